"""One Redis connection pool per process for Django's cache.

Django keeps a cache object per thread and per async context (`caches` is an asgiref Local), and its Redis backend
makes a pool per cache object. Under ASGI every request runs in a context and a thread of its own, so each request
got a new pool and paid a new connection (TCP connect, `CLIENT SETINFO`, the health check) for its first cache
read. `SHARED` keeps the pools by URL and options, so the connections are reused across requests; redis-py's pool
is thread-safe and checks the pid, so a forked process makes its own.

`SharedRedisCache` goes one step further: Django's Redis cache builds a `redis.Redis` for every call (its
`__init__` fills a table of some 250 response callbacks: a fifth of a cached poll's time), and a client object per
cache object. One client per process, on the shared pool, serves every thread.
"""

import contextvars
import threading
from contextlib import contextmanager

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.utils.functional import cached_property

_pools: dict[tuple, redis.ConnectionPool] = {}
_lock = threading.Lock()


def _key(where, options: dict) -> tuple:
    return (where, *sorted((name, repr(value)) for name, value in options.items()))


class SharedConnectionPool(redis.ConnectionPool):
    @classmethod
    def from_url(cls, url, **kwargs):
        key = _key(url, kwargs)
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = redis.ConnectionPool.from_url(url, **kwargs)
        return pool


class _OneClientPerPool(RedisCacheClient):
    def __init__(self, servers, **options):
        super().__init__(servers, **options)
        self._clients: dict[int, redis.Redis] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients.setdefault(index, self._client(connection_pool=self._get_connection_pool(write)))
        return client


_cache_clients: dict[tuple, _OneClientPerPool] = {}


class SharedRedisCache(RedisCache):
    """Django's Redis cache with one client per process for each LOCATION and OPTIONS (see the module's note)."""

    @cached_property
    def _cache(self):
        key = _key(tuple(self._servers), self._options)
        client = _cache_clients.get(key)
        if client is None:
            with _lock:
                client = _cache_clients.setdefault(key, _OneClientPerPool(self._servers, **self._options))
        return client


_shared: dict[str, redis.Redis] = {}


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

    client = _shared.get(settings.REDIS_URL)
    if client is None:
        pool = SharedConnectionPool.from_url(settings.REDIS_URL, socket_timeout=2)
        client = _shared.setdefault(settings.REDIS_URL, redis.Redis(connection_pool=pool))
    return client


_read_together: contextvars.ContextVar[dict | None] = contextvars.ContextVar("cache_read_together", default=None)


@contextmanager
def cache_read_together(names: list[str]):
    """Reads the cache entries `names` in one round trip (MGET) for the block: inside it, cache_get answers each
    name's first read from what was found. For a request whose reads of them sit in different layers (its key,
    the catalog's token, the available providers): each would be a round trip of its own. Yields what was found."""
    names = [name for name in names if name]
    if not names or not shared_cache_on():
        yield {}
        return
    from django.core.cache import cache

    found = cache.get_many(names)
    token = _read_together.set({name: found.get(name) for name in names})
    try:
        yield found
    finally:
        _read_together.reset(token)


def cache_get(name: str, default=None):
    """cache.get(name, default), answered from the enclosing cache_read_together if it read `name` and nothing
    read it since: a later read (after the caller filled a missing entry, say) goes to the cache."""
    together = _read_together.get()
    if together is not None and name in together:
        value = together.pop(name)
        return default if value is None else value
    from django.core.cache import cache

    return cache.get(name, default)
