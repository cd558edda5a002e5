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


@app.task(name="tests.lib.direct_probe", shared=False)
def direct_probe(value: str) -> str:
    return value


def test_the_direct_sender_sends_the_message_apply_async_sends():
    """DirectSender (kiwiwhale/lib/broker.py) pushes what `apply_async` would push, field by field (only the ids,
    the delivery tag and the body that carries nothing else differ by nature); a real worker runs what it sends
    in the rest of the suite (every job's message goes this way)."""
    import base64
    import json

    import redis
    from celery import signals
    from celery.app.routes import MapRoute
    from django.conf import settings

    from kiwiwhale.lib.broker import DirectSender

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    queue = "kiwiwhale-test-direct-probe"
    client.delete(queue)
    published = []

    def note(headers=None, routing_key=None, **kwargs):
        published.append((routing_key, dict(headers)))
        headers["x-test"] = "added by a receiver"  # as apps/ops/request_id.py adds the request's id

    route = MapRoute({direct_probe.name: {"queue": queue}})  # a queue no worker of the suite reads
    app.amqp.routes.insert(0, route)
    signals.before_task_publish.connect(note)
    try:
        direct_probe.apply_async(("a kiwi",))
        sender = DirectSender(app)
        assert sender.send(direct_probe, ("a kiwi",)) is True
    finally:
        signals.before_task_publish.disconnect(note)
        app.amqp.routes.remove(route)
    by_celery, direct = (json.loads(raw) for raw in reversed(client.lrange(queue, 0, -1)))
    assert client.llen(queue) == 2 and [routing_key for routing_key, _ in published] == [queue, queue]
    for message in (by_celery, direct):
        message["body"] = json.loads(base64.b64decode(message["body"]))
        for name in ("id", "root_id", "origin"):
            assert message["headers"].pop(name)
        for name in ("correlation_id", "delivery_tag"):
            assert message["properties"].pop(name)
    assert direct == by_celery, (direct, by_celery)
    assert direct["headers"]["x-test"] == "added by a receiver" and direct["body"][0] == ["a kiwi"]
    assert direct["properties"]["delivery_info"] == {"exchange": "", "routing_key": queue}
    client.delete(queue)

    # A case it leaves to Celery: eager mode.
    app.conf.task_always_eager = True
    try:
        assert DirectSender(app).send(direct_probe, ("x",)) is False
    finally:
        app.conf.task_always_eager = False
    assert client.llen(queue) == 0
