"""Celery's Redis transport with one client per channel.

kombu's Redis channel builds a `redis.Redis` for every command it sends outside the worker's event loop (each
submit's `LPUSH`), and redis-py fills a table of some 250 response callbacks in each one; on the same connection
pool, one client serves every call (redis-py's clients are thread-safe on a pool). Used when the broker is Redis
(CELERY_BROKER_TRANSPORT).
"""

import base64
from functools import cached_property

from celery import signals
from celery.utils.saferepr import saferepr
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps
from kombu.utils.uuid import uuid


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


class DirectSender:
    """Sends a task's message as `apply_async` does on this transport, in one `LPUSH` and a small share of its CPU.

    Celery's send path (options merged from four places, the router, kombu's producer, entity copies, its retry
    wrapper) was a sixth of a submit's CPU. Here the message is Celery's own (`app.amqp.as_task_v2`, the
    `before_task_publish` signal sent as Celery sends it) in kombu's Redis envelope (body in base64, a delivery
    tag), pushed to the queue's list, where the worker's `BRPOP` takes it as any other. Only the plain case takes
    this path: a Redis broker through this module's Transport, no keyprefix or other transport options, not eager,
    no countdown, not from inside a task (Celery would record its parent), a queue of the default exchange type;
    anything else, or any error here, goes through `apply_async` (which retries on a broken connection).
    tests/lib/test_celery_app.py compares the two messages field by field."""

    def __init__(self, app):
        self.app = app
        self._queues: dict[tuple, str | None] = {}  # (task, default queue) → its queue's name, None: Celery's path
        self._client = None

    @cached_property
    def _plain_broker(self) -> bool:
        # Read once: Celery's settings object costs some 25 µs a look-up.
        conf = self.app.conf
        return (
            conf.broker_transport == f"{__name__}:Transport"
            and not conf.broker_transport_options
            and not conf.task_always_eager
        )

    @cached_property
    def _repr_levels(self) -> int:
        return self.app.conf.task_repr_maxlevels

    def usable(self) -> bool:
        return self._plain_broker and self.app.current_worker_task is None

    def send(self, task, args: tuple) -> bool:
        """True if sent; False if this call needs Celery's own path."""
        if not self.usable():
            return False
        queue = self._queue_of(task, args)
        if queue is None:
            return False
        task_id = uuid()
        amqp = self.app.amqp
        headers, properties, body, _ = amqp.as_task_v2(
            task_id,
            task.name,
            args,
            {},
            argsrepr=saferepr(args, amqp.argsrepr_maxsize, maxlevels=self._repr_levels),
            kwargsrepr="{}",
            reply_to=self.app.thread_oid,
            time_limit=task.time_limit,
            soft_time_limit=task.soft_time_limit,
            ignore_result=task.ignore_result,
        )
        if signals.before_task_publish.receivers:
            signals.before_task_publish.send(
                sender=task.name, body=body, exchange="", routing_key=queue, declare=[], headers=headers,
                properties=properties, retry_policy=None,
            )  # fmt: skip
        properties.update(
            delivery_mode=2,
            delivery_info={"exchange": "", "routing_key": queue},
            priority=0,
            body_encoding="base64",
            delivery_tag=uuid(),
        )
        envelope = {
            "body": base64.b64encode(dumps(body).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": properties,
        }
        self._redis().lpush(queue, dumps(envelope))
        if signals.after_task_publish.receivers:
            signals.after_task_publish.send(
                sender=task.name, body=body, headers=headers, exchange="", routing_key=queue
            )
        return True

    def _queue_of(self, task, args) -> str | None:
        # Routed again when the default queue changes (tests give each of theirs a queue of its own).
        key = (task.name, self.app.conf.task_default_queue)
        if key not in self._queues:
            options = {name: value for name, value in task._get_exec_options().items() if value is not None}
            route = self.app.amqp.router.route(options, task.name, args, {}, task)
            queue = route.get("queue")
            plain = (
                queue is not None
                and queue.exchange.type == "direct"
                and not queue.queue_arguments
                and not route.get("priority")
                and not task.priority
            )
            self._queues[key] = queue.name if plain else None
        return self._queues[key]

    def _redis(self):
        url = self.app.conf.broker_url
        if self._client is None or self._client[0] != url:
            import redis

            from kiwiwhale.lib.redis_pool import SharedConnectionPool

            self._client = (url, redis.Redis(connection_pool=SharedConnectionPool.from_url(url)))  # the process's pool
        return self._client[1]
