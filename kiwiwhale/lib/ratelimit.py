"""Rate limits: a fixed window counted in the shared cache, for page views and (through CounterThrottle) the API."""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from kiwiwhale.lib.redis_pool import redis_shared

PERIODS = {"second": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86400, "d": 86400}


def rate_parse(rate: str) -> tuple[int, int] | None:
    """ "5/hour" → (5, 3600). An empty rate, "0" or "off" means no limit (None)."""
    rate = (rate or "").strip().lower()
    if rate in ("", "0", "off", "none"):
        return None
    count, _, period = rate.partition("/")
    if period not in PERIODS or not count.isdigit() or int(count) < 1:
        raise ValueError(f"Bad rate {rate!r}; write it as '<count>/<second|minute|hour|day>'.")
    return int(count), PERIODS[period]


def rate_limit_hit(scope: str, ident: str, *, rate: str) -> int:
    """Counts one hit of `ident` (an IP, an account) in `scope`; returns 0 when allowed, else seconds to wait.

    The counter lives in the cache (Redis in production), so every web process shares it.
    """
    parsed = rate_parse(rate)
    if parsed is None:
        return 0
    limit, period = parsed
    now = time.time()
    window = int(now // period)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:32]  # keeps raw IPs out of the cache keys
    hits = _counter_hit(f"ratelimit:{scope}:{digest}:{window}", timeout=period + 1)
    if hits <= limit:
        return 0
    return max(1, int((window + 1) * period - now))


def _counter_hit(key: str, *, timeout: int) -> int:
    """Adds one to the window's counter and returns it. With Redis, in one round trip (a SET NX that creates the
    counter with its expiry, then INCR); the cache API would take three (add, then exists + incr)."""
    if settings.REDIS_URL:
        pipe = redis_shared().pipeline(transaction=True)
        pipe.set(cache.make_key(key), 0, ex=timeout, nx=True)
        pipe.incr(cache.make_key(key))
        return pipe.execute()[1]
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def client_ip(request) -> str:
    """The client's address, trusting X-Forwarded-For only as far as the configured NUM_PROXIES (as DRF does)."""
    remote = request.META.get("REMOTE_ADDR", "")
    num_proxies = settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if num_proxies and forwarded:
        addresses = [address.strip() for address in forwarded.split(",") if address.strip()]
        if addresses:
            return addresses[-min(num_proxies, len(addresses))]
    return remote


class CounterThrottle(BaseThrottle):
    """A DRF throttle on rate_limit_hit. DRF's own throttles read a history, then write it back: parallel requests
    all read the same history and all pass (60 at once made 11 accounts against a limit of 10). One atomic counter
    per window (Redis INCR) lets exactly `count` through."""

    scope = ""
    rate_setting = ""  # the name of the setting holding the rate, read per request so it can change at runtime

    def ident(self, request) -> str:
        return client_ip(request)

    def allow_request(self, request, view) -> bool:
        self.wait_seconds = rate_limit_hit(self.scope, self.ident(request), rate=getattr(settings, self.rate_setting))
        return self.wait_seconds == 0

    def wait(self) -> int:
        return self.wait_seconds
