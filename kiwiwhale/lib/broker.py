"""Celery's Redis transport with one client per channel.

kombu's Redis channel builds a `redis.Redis` for every command it sends outside the worker's event loop (each
submit's `LPUSH`), and redis-py fills a table of some 250 response callbacks in each one; on the same connection
pool, one client serves every call (redis-py's clients are thread-safe on a pool). Used when the broker is Redis
(CELERY_BROKER_TRANSPORT).
"""

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _client_kept = None

    def _create_client(self, asynchronous=False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._client_kept
        if client is None or client.connection_pool is not self.pool:  # a pool made again: a client on it
            client = self._client_kept = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
