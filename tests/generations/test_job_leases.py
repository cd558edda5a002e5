"""Leases, the state table and lost messages: what the sweepers do with a job whose worker or message is gone.

The broker is the real Redis, on a queue of each test's own with no worker on it: a backlog of waiting messages.
"""

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import pytest
import redis
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ModelRoute
from apps.generations.models import IllegalTransition, Job
from apps.generations.services import (
    job_create,
    job_enqueue,
    job_lease_kept,
    job_run,
    jobs_recover_lapsed,
    jobs_requeue_lost,
)
from kiwiwhale.celery import app, queue_size
from tests.generations.conftest import EchoProvider, stored_files, submit

pytestmark = pytest.mark.django_db


class TimedOutProvider(EchoProvider):
    """An engine interrupted by the task's soft time limit (Celery raises this inside the running task)."""

    def run(self, *, upstream_model, params, input):
        raise SoftTimeLimitExceeded()


@pytest.fixture
def echo_route(text_model, test_providers):
    return ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo")


@pytest.fixture
def local_model(catalog):
    return AIModel.objects.get(public_model="local/procedural-image")


def lapse(job, **fields):
    """What a worker killed mid-run leaves: the job processing under a lease nobody renews any more."""
    fields = {
        "status": "processing",
        "attempts": 1,
        "lease_owner": "gone-host:1:dead",
        "lease_expires_at": timezone.now() - timedelta(seconds=1),
        "started_at": timezone.now() - timedelta(seconds=90),
        **fields,
    }
    Job.objects.filter(pk=job.pk).update(**fields)


# --- the state table ------------------------------------------------------------------------------------------


def test_the_state_table_allows_the_lifecycle_and_nothing_out_of_a_final_state():
    S = Job.Status
    assert Job.transition_allowed(S.QUEUED, S.PROCESSING) and Job.transition_allowed(S.PROCESSING, S.COMPLETED)
    assert Job.transition_allowed(S.PROCESSING, S.QUEUED)  # a lost worker's job, retried
    assert not Job.transition_allowed(S.QUEUED, S.COMPLETED)
    assert set(Job.TRANSITIONS) == set(S.values)
    for final in Job.TERMINAL:
        assert Job.TRANSITIONS[final] == set()


def test_it_refuses_an_illegal_transition_before_it_reaches_the_database(alice, text_model, echo_route):
    job = submit(alice, text_model)
    job_run(job_id=job.pk)
    with pytest.raises(IllegalTransition):
        Job.objects.filter(pk=job.pk).transition(source=Job.Status.COMPLETED, target=Job.Status.PROCESSING)
    with pytest.raises(IllegalTransition):
        Job.objects.filter(pk=job.pk).transition(source=Job.Status.QUEUED, target=Job.Status.COMPLETED)
    assert Job.objects.get(pk=job.pk).status == "completed"


def test_a_transition_from_a_state_the_job_is_not_in_changes_nothing(alice, text_model, echo_route):
    job = submit(alice, text_model)
    assert Job.objects.filter(pk=job.pk).transition(source=Job.Status.PROCESSING, target=Job.Status.FAILED) == 0
    assert Job.objects.get(pk=job.pk).status == "queued"


# --- time limits ----------------------------------------------------------------------------------------------


def test_a_soft_time_limit_fails_the_job_as_a_timeout_with_its_credits_back(alice, text_model, test_providers):
    from apps.catalog.models import ProviderAccount
    from apps.generations import providers

    providers.PROVIDERS["timed-out"] = f"{__name__}.TimedOutProvider"
    try:
        ProviderAccount.objects.create(slug="timed-out", kind="timed-out", enabled=True)
        ModelRoute.objects.create(model=text_model, provider="timed-out", upstream_model="x")
        job = submit(alice, text_model)
        job_run(job_id=job.pk)
    finally:
        del providers.PROVIDERS["timed-out"]
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "timeout")
    assert wallet_get(user=alice).balance_micro == 10_000_000
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="refund").count() == 1


# --- lapsed leases --------------------------------------------------------------------------------------------


def test_a_local_job_whose_worker_died_is_retried_once_and_charged_once(alice, local_model, media_root):
    job = job_create(user=alice, model=local_model, input={"prompt": "x", "width": 64, "height": 64})
    partial = default_storage.save("outputs/2026/01/abc/image.png", ContentFile(b"half a picture"))
    lapse(job, provider="local", staged_files=[partial])

    assert jobs_recover_lapsed() == 1
    job.refresh_from_db()
    assert (job.status, job.lease_owner, job.staged_files, job.attempts) == ("queued", "", [], 1)
    assert job.hold.status == "held" and not default_storage.exists(partial)
    assert jobs_recover_lapsed() == 0

    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts, job.lease_expires_at) == ("completed", 2, None)
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="debit").count() == 1
    assert not LedgerEntry.objects.filter(wallet__user=alice, kind="refund").exists()
    assert stored_files(media_root) == [job.outputs.get().file.name]


def test_a_job_lost_on_its_last_attempt_fails_with_its_credits_back_once(alice, local_model, media_root):
    job = job_create(user=alice, model=local_model, input={"prompt": "x", "width": 64, "height": 64})
    partial = default_storage.save("outputs/2026/01/def/image.png", ContentFile(b"half"))
    lapse(job, provider="local", attempts=2, staged_files=[partial])
    assert jobs_recover_lapsed() == 1
    assert jobs_recover_lapsed() == 0
    job.refresh_from_db()
    assert (job.status, job.error_code, job.hold.status) == ("failed", "worker_lost", "released")
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="refund").count() == 1
    assert wallet_get(user=alice).balance_micro == 10_000_000
    assert stored_files(media_root) == []


def test_a_job_lost_while_an_upstream_ran_it_is_failed_not_sent_again(alice, text_model, echo_route):
    job = submit(alice, text_model)
    lapse(job, provider="echo", route=echo_route)
    assert jobs_recover_lapsed() == 1
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "worker_lost")
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_a_job_lost_while_polling_its_upstream_is_polled_again(
    alice, text_model, echo_route, broker_queue, django_capture_on_commit_callbacks
):
    job = submit(alice, text_model)
    later = timezone.now() + timedelta(minutes=1)
    lapse(job, provider="echo", route=echo_route, poll_at=later, upstream_state={"a": 1})
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs_recover_lapsed() == 1
    job.refresh_from_db()
    assert (job.status, job.lease_expires_at) == ("processing", None)
    assert job.poll_at <= timezone.now() and queue_size(broker_queue) == 1


def test_a_late_result_of_a_run_that_lost_its_job_is_refused(alice, text_model, echo_route, monkeypatch, media_root):
    job = submit(alice, text_model)
    engine_run = EchoProvider.run
    runs = []

    def run_while_the_job_is_recovered(self, **kwargs):
        runs.append(1)
        if len(runs) == 1:  # the first run stalls; meanwhile its lease lapses and the job runs again elsewhere
            Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            Job.objects.filter(pk=job.pk).update(provider="")  # it had not reached an upstream
            assert jobs_recover_lapsed() == 1
            job_run(job_id=job.pk)
        return engine_run(self, **kwargs)

    monkeypatch.setattr(EchoProvider, "run", run_while_the_job_is_recovered)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts, len(runs)) == ("completed", 2, 2)
    assert stored_files(media_root) == [job.outputs.get().file.name]  # the stale run wrote nothing
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="debit").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_worker_renews_the_lease_while_the_job_runs(alice, text_model, echo_route, settings):
    settings.JOB_LEASE_SECONDS = 0.6
    job = submit(alice, text_model)
    expires = timezone.now() + timedelta(seconds=0.6)
    Job.objects.filter(pk=job.pk).update(status="processing", lease_owner="me", lease_expires_at=expires)
    with job_lease_kept(job_id=job.pk, owner="me"):
        time.sleep(1.5)
        renewed = Job.objects.get(pk=job.pk).lease_expires_at
    assert renewed > expires + timedelta(seconds=0.5)
    assert not [t for t in threading.enumerate() if t.name == f"lease-{job.pk}"]


# --- lost messages --------------------------------------------------------------------------------------------


def age_messages(minutes: int = 60):
    Job.objects.filter(enqueued_at__isnull=False).update(enqueued_at=timezone.now() - timedelta(minutes=minutes))
    Job.objects.update(created_at=timezone.now() - timedelta(minutes=minutes))


def test_a_backlog_with_no_worker_gets_no_duplicate_messages(alice, text_model, echo_route, broker_queue):
    jobs = [submit(alice, text_model, f"job {n}") for n in range(6)]
    for job in jobs:
        assert job_enqueue(job_id=job.pk)
    assert queue_size(broker_queue) == 6
    for _ in range(4):  # sweeps long after the messages were sent, while nobody consumes them
        age_messages()
        assert jobs_requeue_lost() == 0
    assert queue_size(broker_queue) == 6


def test_messages_the_broker_lost_are_sent_again_once(alice, text_model, echo_route, broker_queue):
    jobs = [submit(alice, text_model, f"job {n}") for n in range(4)]
    for job in jobs:
        job_enqueue(job_id=job.pk)
    redis.Redis.from_url(app.conf.broker_url).delete(broker_queue)  # the broker restarted without its data
    age_messages()
    assert jobs_requeue_lost() == 4
    assert queue_size(broker_queue) == 4
    age_messages(minutes=3)  # past JOB_REQUEUE_AFTER_SECONDS, but the broker holds every message again
    assert jobs_requeue_lost() == 0
    assert set(Job.objects.values_list("requeues", flat=True)) == {1}


def test_a_job_whose_message_never_reached_the_broker_is_sent_at_the_next_sweep(
    alice, text_model, echo_route, broker_queue
):
    fresh = submit(alice, text_model)  # its on-commit send has not happened yet (within the grace)
    lost = submit(alice, text_model)
    Job.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(seconds=30))
    assert jobs_requeue_lost() == 1
    assert Job.objects.get(pk=lost.pk).enqueued_at is not None
    assert Job.objects.get(pk=fresh.pk).enqueued_at is None
    assert jobs_requeue_lost() == 0 and queue_size(broker_queue) == 1


def test_an_overdue_poll_is_sent_again_with_a_back_off(alice, text_model, echo_route, broker_queue):
    job = submit(alice, text_model)
    overdue = timezone.now() - timedelta(minutes=5)
    Job.objects.filter(pk=job.pk).update(
        status="processing", route=echo_route, poll_at=overdue, upstream_state={"a": 1}
    )
    assert jobs_requeue_lost() == 1
    assert jobs_requeue_lost() == 0  # not again at the next sweep
    Job.objects.filter(pk=job.pk).update(poll_at=timezone.now() - timedelta(seconds=150))
    assert jobs_requeue_lost() == 0  # its second re-send waits twice as long


QUEUES_SEEN = """
import django
django.setup()
from django.conf import settings
from kiwiwhale.celery import app, queue_size
from apps.generations.tasks import job_run, jobs_recover_lapsed
with app.connection_for_write() as connection:  # bound as a worker binds them when it starts
    for queue in settings.CELERY_TASK_QUEUES:
        queue(connection.default_channel).declare()
job_run.delay("job_x")
jobs_recover_lapsed.delay()
print(*[queue_size(queue.name) for queue in settings.CELERY_TASK_QUEUES])
"""


def test_each_message_goes_to_one_queue_only():
    name = f"kiwiwhale-routes-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CELERY_QUEUE": name, "DJANGO_SETTINGS_MODULE": "kiwiwhale.settings"}
    try:  # a process of its own: this one's default queue was changed for the tests
        seen = subprocess.run([sys.executable, "-c", QUEUES_SEEN], env=env, capture_output=True, text=True, timeout=60)
        assert seen.stdout.split() == ["1", "1"], seen.stderr  # the job on the job queue, the sweep on the sweep queue
    finally:
        client = redis.Redis.from_url(app.conf.broker_url)
        client.delete(name, f"{name}-sweep", f"_kombu.binding.{name}", f"_kombu.binding.{name}-sweep")
