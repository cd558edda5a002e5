"""Faults injected for real, through real worker and beat processes: a worker killed with SIGKILL mid-job, the
broker down while a job is submitted, the database connection dropped in the middle of the settle.

The workers run with a 5 s lease and a 1 s sweep (settings, through their environment), so each test takes well
under a minute; in production the same paths take at most JOB_LEASE_SECONDS + JOB_SWEEP_SECONDS (90 s).
"""

import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel
from apps.generations.models import Job
from apps.generations.services import job_create
from kiwiwhale.celery import app
from tests.conftest import ROOT
from tests.generations.conftest import stored_files
from tests.integration.faults import Fleet, RedisServer, TcpProxy, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

LONG_VIDEO = {"prompt": "a slow one", "width": 960, "height": 540, "duration": 10, "fps": 24, "seed": 1}  # 4-8 s
SMALL_IMAGE = {"prompt": "x", "width": 64, "height": 64, "seed": 3}


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    return settings.MEDIA_ROOT


@pytest.fixture
def fleet_for(tmp_path, media_root, settings):
    """Starts a Fleet; this process sends its jobs to the fleet's queue; everything is stopped at the end."""
    fleets = []
    previous = app.conf.task_default_queue

    def start(**env) -> Fleet:
        fleet = Fleet(tmp_path, **env)
        settings.CELERY_TASK_DEFAULT_QUEUE = app.conf.task_default_queue = fleet.queue
        fleets.append(fleet)
        return fleet

    yield start
    app.conf.task_default_queue = previous
    for fleet in fleets:
        fleet.stop()


def hold_row_locked(hold_id: int) -> psycopg.Connection:
    """Another session locks the job's hold: the worker's settle waits there, after its files are written."""
    db = settings.DATABASES["default"]
    conn = psycopg.connect(host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"])
    conn.execute("SELECT id FROM billing_hold WHERE id = %s FOR UPDATE", [hold_id])
    return conn


def a_backend_waits_on_a_lock(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return row[0] > 0


def owner_pid(job: Job) -> int:
    return int(job.lease_owner.split(":")[1])


def terminal(job_id: str) -> Job | None:
    job = Job.objects.get(pk=job_id)
    return job if job.is_terminal else None


def test_a_job_whose_worker_is_killed_mid_run_is_retried_on_another_and_charged_once(
    fleet_for, catalog, alice, media_root, record_property
):
    fleet = fleet_for()
    fleet.worker("a"), fleet.worker("b"), fleet.beat()
    fleet.wait_ready()
    model = AIModel.objects.get(public_model="local/text-to-video")
    job = job_create(user=alice, model=model, input=LONG_VIDEO)
    running = wait_until(
        lambda: Job.objects.filter(pk=job.pk, status="processing", lease_owner__gt="").first(),
        timeout=30,
        what="a worker runs the job",
    )
    time.sleep(1.5)  # inside the render
    victim = fleet.owner(owner_pid(running))
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    wait_until(lambda: Job.objects.filter(pk=job.pk, attempts=2).exists(), timeout=170, what="the retry starts")
    recovered = time.monotonic() - killed_at
    done = wait_until(lambda: terminal(job.pk), timeout=170, what="the job ends", every=0.2)
    elapsed = time.monotonic() - killed_at
    record_property("kill_to_retry_seconds", round(recovered, 1))
    record_property("kill_to_terminal_seconds", round(elapsed, 1))
    print(f"\nkill -9 -> retried in {recovered:.1f} s -> {done.status} in {elapsed:.1f} s")
    assert done.status == "completed", fleet.logs()
    assert done.attempts == 2 and owner_pid(done) != victim.pid  # the other worker ran it
    assert elapsed < 180
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="debit").count() == 1
    assert not LedgerEntry.objects.filter(wallet__user=alice, kind="refund").exists()
    assert stored_files(media_root) == [done.outputs.get().file.name]


def test_a_job_whose_worker_is_killed_after_writing_its_files_fails_with_nothing_left(
    fleet_for, catalog, alice, media_root
):
    fleet = fleet_for(JOB_MAX_ATTEMPTS="1")
    model = AIModel.objects.get(public_model="local/procedural-image")
    job = job_create(user=alice, model=model, input=SMALL_IMAGE)  # waits in the queue: no worker yet
    lock = hold_row_locked(job.hold_id)
    try:
        fleet.worker("a"), fleet.worker("b"), fleet.beat()
        fleet.wait_ready()
        wait_until(lambda: a_backend_waits_on_a_lock(lock), timeout=30, what="the settle waits on the hold")
        running = Job.objects.get(pk=job.pk)
        assert running.staged_files and stored_files(media_root) == running.staged_files
        os.kill(owner_pid(running), signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        lock.rollback()
        lock.close()

    done = wait_until(lambda: terminal(job.pk), timeout=170, what="the job ends", every=0.2)
    print(f"\nkill -9 -> {done.status} in {time.monotonic() - killed_at:.1f} s")
    assert (done.status, done.error_code) == ("failed", "worker_lost"), fleet.logs()
    assert done.outputs.count() == 0 and stored_files(media_root) == []
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="refund", reference=job.pk).count() == 1
    assert wallet_get(user=alice).balance_micro == 10_000_000


SUBMIT = """
import json, sys, django
django.setup()
from apps.accounts.models import User
from apps.catalog.models import AIModel
from apps.generations.services import job_create
job = job_create(user=User.objects.get(pk=sys.argv[1]), model=AIModel.objects.get(public_model=sys.argv[2]),
                 input=json.loads(sys.argv[3]))
print(job.pk)
"""


def test_a_job_submitted_while_the_broker_is_down_runs_once_it_is_back(fleet_for, catalog, alice, tmp_path):
    broker = RedisServer(tmp_path)
    broker.start()
    try:
        fleet = fleet_for(CELERY_BROKER_URL=broker.url)
        fleet.worker("a"), fleet.beat()
        fleet.wait_ready()
        broker.stop()
        submitted = subprocess.run(  # a web process of its own, on the broker that is down
            [sys.executable, "-c", SUBMIT, str(alice.pk), "local/procedural-image", json.dumps(SMALL_IMAGE)],
            cwd=ROOT,
            env={**fleet.env, "DJANGO_SETTINGS_MODULE": "kiwiwhale.settings"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert submitted.returncode == 0, submitted.stderr
        job = Job.objects.get(pk=submitted.stdout.strip().splitlines()[-1])
        assert (job.status, job.enqueued_at) == ("queued", None)  # accepted, its message not sent
        time.sleep(2)
        broker.start()
        done = wait_until(lambda: terminal(job.pk), timeout=50, what="the job ends", every=0.2)
    finally:
        broker.stop()
    assert done.status == "completed", fleet.logs()
    assert done.attempts == 1 and done.requeues == 0
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="debit").count() == 1


def test_a_database_connection_dropped_mid_settle_leaves_the_job_consistent(fleet_for, catalog, alice, media_root):
    db = settings.DATABASES["default"]
    proxy = TcpProxy(int(db["PORT"] or 5432))
    try:
        fleet = fleet_for(database_port=proxy.port)
        model = AIModel.objects.get(public_model="local/procedural-image")
        job = job_create(user=alice, model=model, input=SMALL_IMAGE)
        lock = hold_row_locked(job.hold_id)
        try:
            fleet.worker("a"), fleet.beat()
            fleet.wait_ready()
            wait_until(lambda: a_backend_waits_on_a_lock(lock), timeout=30, what="the settle waits on the hold")
            assert proxy.cut() > 0  # the worker's connections drop in the middle of the settle
        finally:
            lock.rollback()
            lock.close()
        done = wait_until(lambda: terminal(job.pk), timeout=50, what="the job ends", every=0.2)
    finally:
        proxy.close()
    # The settle was rolled back with the connection; the lapsed lease ran the job again, and it was charged once.
    assert done.status == "completed", fleet.logs()
    assert done.attempts == 2 and done.hold.status == "settled"
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="debit").count() == 1
    assert not LedgerEntry.objects.filter(wallet__user=alice, kind="refund").exists()
    assert stored_files(media_root) == [done.outputs.get().file.name]
    assert timezone.now() - done.created_at < timezone.timedelta(minutes=1)
