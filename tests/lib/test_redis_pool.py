"""cache_read_together / cache_get (kiwiwhale/lib/redis_pool.py): one MGET for reads made in different layers."""

from django.core.cache import cache

from kiwiwhale.lib.redis_pool import cache_get, cache_read_together


def test_reads_in_the_block_come_from_one_mget_once_each_then_from_the_cache():
    cache.set("t:a", "one")
    cache.delete("t:missing")
    with cache_read_together(["t:a", "t:missing", ""]) as found:
        assert found == {"t:a": "one"}
        cache.set("t:a", "two")  # changed after the read: the block's first read answers what the MGET found
        assert cache_get("t:a") == "one"
        assert cache_get("t:a") == "two"  # a second read goes to the cache
        assert cache_get("t:missing", "default") == "default"
        cache.set("t:missing", "filled")  # as a caller fills a missing entry
        assert cache_get("t:missing") == "filled"
        assert cache_get("t:other", 5) == 5  # not read together: the cache's answer
    cache.set("t:a", "three")
    assert cache_get("t:a") == "three"  # outside a block, always the cache
    with cache_read_together(["t:a"]), cache_read_together([]):  # an inner, empty block hides nothing
        assert cache_get("t:a") == "three"
