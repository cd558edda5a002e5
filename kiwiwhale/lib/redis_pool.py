"""One Redis connection pool per process for Django's cache.

Django keeps a cache object per thread and per async context (`caches` is an asgiref Local), and its Redis backend
makes a pool per cache object. Under ASGI every request runs in a context and a thread of its own, so each request
got a new pool and paid a new connection (TCP connect, `CLIENT SETINFO`, the health check) for its first cache
read. `SHARED` keeps the pools by URL and options, so the connections are reused across requests; redis-py's pool
is thread-safe and checks the pid, so a forked process makes its own.
"""

import threading

import redis

_pools: dict[tuple, redis.ConnectionPool] = {}
_lock = threading.Lock()


class SharedConnectionPool(redis.ConnectionPool):
    @classmethod
    def from_url(cls, url, **kwargs):
        key = (url, *sorted((name, repr(value)) for name, value in kwargs.items()))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = redis.ConnectionPool.from_url(url, **kwargs)
        return pool


def shared_cache_on() -> bool:
    """Whether the cache is shared by every process (Redis). What a process keeps there for others (keys, job
    answers, the catalog's generation) needs it: a per-process cache could not hear of a revoke, a deletion or a
    catalog change made in another process, so without Redis those reads go to the database."""
    from django.conf import settings

    return bool(settings.REDIS_URL)


def redis_shared() -> redis.Redis:
    """A Redis client on this process's pool for settings.REDIS_URL, for what the cache API cannot say in one round
    trip (pipelines, streams, pub/sub). Short socket timeouts: its callers fall back when Redis is slow."""
    from django.conf import settings

    return redis.Redis(connection_pool=SharedConnectionPool.from_url(settings.REDIS_URL, socket_timeout=2))
