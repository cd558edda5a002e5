"""job_wait: a coroutine that returns when a job ends, woken by Redis or by re-reading the database."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.test import override_settings

from apps.catalog.models import AIModel
from apps.generations.models import Job
from apps.generations.services import job_create
from apps.generations.waits import job_ended_notify, job_wait

pytestmark = pytest.mark.django_db(transaction=True)


def _wait(job_id: str, timeout: float):
    async def wait_then_close():
        try:
            return await job_wait(job_id, timeout=timeout)
        finally:  # the executor thread's connection, else the test database cannot be dropped
            await sync_to_async(connections.close_all)()

    return asyncio.run(wait_then_close())


def _job(user):
    model = AIModel.objects.get(public_model="local/procedural-image")
    return job_create(user=user, model=model, input={"prompt": "a kiwi", "width": 64, "height": 64})


def _end_later(job_id: str, delay: float, *, notify: bool) -> threading.Thread:
    def end():
        time.sleep(delay)
        Job.objects.filter(pk=job_id).update(status=Job.Status.CANCELED)
        if notify:
            job_ended_notify(job_id)
        connection.close()

    thread = threading.Thread(target=end)
    thread.start()
    return thread


@pytest.mark.parametrize("redis", [True, False], ids=["notified by Redis", "polling the database"])
def test_it_returns_as_soon_as_the_job_ends(catalog, alice, settings, redis):
    if not redis:
        settings.REDIS_URL = ""
    job = _job(alice)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.PROCESSING)  # no worker here: nothing else moves it
    ender = _end_later(job.pk, 0.3, notify=redis)
    started = time.monotonic()
    status = _wait(job.pk, 10)
    took = time.monotonic() - started
    ender.join()
    assert status == "canceled"
    assert 0.25 < took < 1.5
    job.hold.refresh_from_db()  # the test moved the status only: give the hold back for the ledger check
    from apps.billing.services import hold_release

    hold_release(hold=job.hold, reason="test", reference=job.pk)


def test_it_gives_up_at_the_deadline_with_the_status_as_it_is(catalog, alice):
    job = _job(alice)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.PROCESSING)
    started = time.monotonic()
    assert _wait(job.pk, 0.4) == "processing"
    assert 0.35 < time.monotonic() - started < 1.5
    from apps.billing.services import hold_release

    hold_release(hold=job.hold, reason="test", reference=job.pk)


def test_it_answers_none_for_no_such_job_and_caps_the_wait(db):
    assert _wait("job_nope", 5) is None
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):  # Redis down: it still waits, by polling
        started = time.monotonic()
        assert _wait("job_nope", 5) is None
        assert time.monotonic() - started < 3
