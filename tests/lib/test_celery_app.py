import threading

from apps.generations.tasks import job_run
from kiwiwhale.celery import app


def test_without_a_result_backend_every_thread_shares_one_backend():
    """Results are ignored, so Celery's DisabledBackend is one object for the process: under ASGI each request has
    a thread of its own, and a backend per thread was built again for every submit's AsyncResult."""
    assert not app.conf.result_backend
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(job_run.AsyncResult("job_x").backend)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(backend) for backend in seen}) == 1, seen
    assert seen[0] is app.backend


def test_the_redis_broker_keeps_one_client_per_channel_and_still_delivers():
    """kombu's Redis channel built a redis.Redis (about 135 µs of callback tables here) for each command it sent,
    each submit's LPUSH included; kiwiwhale.lib.broker keeps one per channel, on the channel's pool."""
    import redis
    from django.conf import settings

    from kiwiwhale.lib.broker import Transport

    assert settings.CELERY_BROKER_URL.startswith("redis://"), "make test runs on Redis"
    queue = "kiwiwhale-test-broker-probe"
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, Transport)
        channel = connection.default_channel
        assert channel._create_client() is channel._create_client()
        assert channel._create_client().connection_pool is channel.pool
        with connection.Producer() as producer:
            producer.publish({"probe": 1}, routing_key=queue, declare=[])
        with connection.SimpleQueue(queue) as simple:
            message = simple.get(timeout=5)
            assert message.payload == {"probe": 1}
            message.ack()
    assert redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(queue) == 0
