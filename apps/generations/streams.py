"""A job's text as it arrives: the worker publishes the upstream's deltas, a streamed /v1 chat reads them.

One Redis Stream per job (`kiwiwhale:job:<id>:text`), not pub/sub: a reader that subscribes late (the web request
reads it only after generate.php answered, the worker may already be sending) still gets every delta from the
first, in order. Each entry is `{"d": text}`; when the job ends, a listener (services.JOB_EVENT_LISTENERS) adds
`{"end": status}` after the commit, so the reader stops at once. The stream expires TEXT_TTL_SECONDS after its
last write. Nothing here is the truth: the job's stored output is, and the reader sends whatever of it the deltas
did not carry (all of it for a local engine, which answers at once). Only jobs created with `stream_text` (the
/v1 facade sets it when Redis is configured) are published; without Redis there is nothing to read.
"""

import logging
from collections.abc import AsyncIterator, Callable

from django.conf import settings
from django.db import transaction

from apps.generations.models import Job
from kiwiwhale.lib.redis_pool import redis_shared

logger = logging.getLogger(__name__)

TEXT_TTL_SECONDS = 900  # long enough for a reader that arrives late; the stored output outlives it
READ_BLOCK_SECONDS = 2.0  # the reader re-checks the job's status at least this often (a lost end marker)


def _key(job_id: str) -> str:
    return f"kiwiwhale:job:{job_id}:text"


def _append(job_id: str, fields: dict) -> None:
    pipe = redis_shared().pipeline(transaction=False)
    pipe.xadd(_key(job_id), fields)
    pipe.expire(_key(job_id), TEXT_TTL_SECONDS)
    pipe.execute()


def text_publisher(*, job_id: str) -> Callable[[str], None]:
    """The `on_text` an adapter calls with each delta. A Redis failure stops the publishing, never the job: the
    reader then sends the rest from the stored output."""
    broken = False

    def publish(text: str) -> None:
        nonlocal broken
        if broken:
            return
        try:
            _append(job_id, {"d": text})
        except Exception as exc:
            broken = True
            logger.warning("Job %s: its text could not be published (%s); the reader gets it at the end", job_id, exc)

    return publish


def job_event_text_end(*, job, event: str) -> None:
    """A job event listener: a streamed job's readers stop when it ends (after the commit that ended it)."""
    if event in Job.TERMINAL and job.stream_text and settings.REDIS_URL:
        job_id = job.pk

        def mark_end():
            try:
                _append(job_id, {"end": event})
            except Exception as exc:  # the reader sees the status within READ_BLOCK_SECONDS anyway
                logger.warning("Job %s: the end of its text stream could not be marked (%s)", job_id, exc)

        transaction.on_commit(mark_end)


async def text_deltas(job_id: str, *, status: Callable) -> AsyncIterator[str | None]:
    """The job's deltas from the first, as they are published; None after each READ_BLOCK_SECONDS without one.
    Ends at the end marker, or when `status(job_id)` (awaited when idle) says the job ended. Raises OSError when
    Redis cannot be reached (the caller falls back to waiting for the job)."""
    import redis.asyncio as redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(settings.REDIS_URL)
    last = "0-0"
    try:
        while True:
            try:
                answer = await client.xread({_key(job_id): last}, block=int(READ_BLOCK_SECONDS * 1000), count=200)
            except RedisError as exc:
                raise OSError(str(exc)) from exc
            if not answer:
                if await status(job_id) in Job.TERMINAL:
                    return
                yield None
                continue
            for entry_id, fields in answer[0][1]:
                last = entry_id
                if b"end" in fields:
                    return
                yield fields[b"d"].decode()
    finally:
        await client.aclose()
