"""Waiting for a job to end without holding a thread: `Prefer: wait`, `jobs.php?wait=`, MCP and OpenAI facades.

The web server is ASGI (scripts/web), so a waiting request is a coroutine, not a thread: a hundred open waits
cost a hundred sockets, not a hundred threads, and polls keep their latency.

With Redis, the worker publishes on `kiwiwhale:job:<id>` when a job ends (`job_ended_notify`, called after the
terminal transition commits) and a waiter wakes at once. Subscribing happens *before* the status is read, so an
end that lands between the two is never missed. Without Redis (the embedded default), the waiter re-reads the
status with a growing interval (20 ms up to 500 ms). Either way the database's status is the truth: a
notification only says "look again".
"""

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction

from apps.generations.models import Job
from kiwiwhale.lib.redis_pool import redis_shared

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 60
CHANNEL_PREFIX = "kiwiwhale:job:"


def _channel(job_id: str) -> str:
    return f"{CHANNEL_PREFIX}{job_id}"


@sync_to_async
def job_status(job_id: str) -> str | None:
    try:
        return Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
    finally:
        # A waiting request holds no database connection between two reads: a hundred open waits would
        # otherwise take a hundred of PostgreSQL's connections for nothing.
        connection.close()


async def job_wait(job_id: str, *, timeout: float) -> str | None:
    """Waits up to `timeout` seconds (at most MAX_WAIT_SECONDS) for the job to end; returns its status then
    (None for no such job). Returns early, with the status as it is, once the deadline passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, min(timeout, MAX_WAIT_SECONDS))
    if settings.REDIS_URL:
        try:
            return await _wait_notified(job_id, deadline)
        except OSError as exc:  # Redis unreachable: fall back to reading the database
            logger.warning("job_wait: Redis unavailable (%s); polling the database", exc)
    return await _wait_polling(job_id, deadline)


async def _wait_polling(job_id: str, deadline: float) -> str | None:
    loop = asyncio.get_running_loop()
    delay = 0.02
    while True:
        status = await job_status(job_id)
        left = deadline - loop.time()
        if status is None or status in Job.TERMINAL or left <= 0:
            return status
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.5, 0.5)


async def _wait_notified(job_id: str, deadline: float) -> str | None:
    import redis.asyncio as redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    loop = asyncio.get_running_loop()
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(_channel(job_id))
        except RedisConnectionError as exc:
            raise OSError(str(exc)) from exc
        try:
            while True:
                status = await job_status(job_id)
                left = deadline - loop.time()
                if status is None or status in Job.TERMINAL or left <= 0:
                    return status
                # Re-read at least every 2 s: a notification lost with a Redis restart costs latency, not a hang.
                await pubsub.get_message(timeout=min(left, 2.0))
        finally:
            await pubsub.aclose()
    finally:
        await client.aclose()


def job_event_wake(*, job, event: str) -> None:
    """A job event listener (services.JOB_EVENT_LISTENERS): when a job ends, its waiters wake after the commit."""
    if event in Job.TERMINAL:
        job_id = job.pk
        transaction.on_commit(lambda: job_ended_notify(job_id))


def job_ended_notify(job_id: str) -> None:
    """Wakes whoever waits on `job_id` (call after the job's terminal transition has committed)."""
    if not settings.REDIS_URL:
        return
    import redis

    try:
        redis_shared().publish(_channel(job_id), "ended")
    except redis.RedisError as exc:  # waiters re-read the status every 2 s anyway
        logger.warning("job_ended_notify(%s): %s", job_id, exc)
