"""The per-job text stream on the real Redis: a reader that comes late gets every delta from the first."""

import asyncio
import uuid

import pytest

from apps.generations import streams
from apps.generations.models import Job

pytestmark = pytest.mark.django_db


def _read(job_id: str, status) -> list:
    async def collect():
        return [delta async for delta in streams.text_deltas(job_id, status=status)]

    return asyncio.run(collect())


def test_a_late_reader_gets_every_delta_in_order_then_stops_at_the_end_marker():
    job_id = f"job_{uuid.uuid4().hex}"  # a stream of its own (they outlive the test by TEXT_TTL_SECONDS)
    publish = streams.text_publisher(job_id=job_id)
    for piece in ("Hel", "lo ", "there"):
        publish(piece)
    streams._append(job_id, {"end": "completed"})

    async def running(_):
        return Job.Status.PROCESSING

    assert _read(job_id, running) == ["Hel", "lo ", "there"]  # subscribed after all of it was published


def test_a_reader_stops_when_the_job_ended_without_an_end_marker(monkeypatch):
    monkeypatch.setattr(streams, "READ_BLOCK_SECONDS", 0.1)
    job_id = f"job_{uuid.uuid4().hex}"
    streams.text_publisher(job_id=job_id)("only")

    async def completed(_):
        return Job.Status.COMPLETED

    assert _read(job_id, completed) == ["only"]


def test_an_unreachable_redis_is_an_os_error_for_the_reader_and_nothing_for_the_publisher(settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    streams.text_publisher(job_id="job_x")("ignored")  # logged, never raised: the job goes on

    async def running(_):
        return Job.Status.PROCESSING

    with pytest.raises(OSError):
        _read("job_x", running)
