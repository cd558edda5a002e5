"""A real worker keeps its PostgreSQL connection from one job to the next (CONN_MAX_AGE), and still notices a
connection that died: Celery's Django fixup alone would open a new one around every task (kiwiwhale/celery.py)."""

import time
import uuid

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from apps.catalog.services import model_resolve
from apps.generations.models import Job
from apps.generations.services import job_create
from tests.conftest import celery_worker_started, make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CHEAP = {"prompt": "a kiwi", "width": 64, "height": 64}


def _run_jobs(user, count: int) -> None:
    model = model_resolve("local/procedural-image")
    jobs = [job_create(user=user, model=model, input=CHEAP) for _ in range(count)]
    deadline = time.monotonic() + 60
    while Job.objects.filter(pk__in=[j.pk for j in jobs], status=Job.Status.COMPLETED).count() < count:
        assert time.monotonic() < deadline, "the worker did not complete the jobs"
        time.sleep(0.05)


APPLICATION = f"kw-conn-test-{uuid.uuid4().hex[:6]}"  # names this worker's connections, among the suite's others


def _worker_backends() -> list[tuple[int, object]]:
    """(pid, backend_start) of this test's worker's connections."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = %s", [APPLICATION])
        return sorted(cursor.fetchall())


def test_a_worker_reuses_its_connection_across_jobs_and_replaces_one_that_died(catalog, broker_queue):
    user = make_user("conn", credits="1")
    env = {"DB_CONN_MAX_AGE": "60", "DB_POOL": "0", "DATABASE_URL": f"{_admin_url()}?application_name={APPLICATION}"}
    with celery_worker_started(queue=broker_queue, env=env, log_name="test-worker-connections.log"):
        _run_jobs(user, 1)  # one at a time: the pool's idle thread takes each, on its connection
        before = _worker_backends()
        assert len(before) == 1
        for _ in range(5):
            _run_jobs(user, 1)
        after = _worker_backends()
        assert after == before, "the worker opened a new connection for a later job"

        # Killed from the server's side, as a restart or a dropped link would: the next job still runs.
        with psycopg.connect(_admin_url(), autocommit=True) as admin:
            for pid, _ in after:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        _run_jobs(user, 3)
    assert Job.objects.filter(user=user, status=Job.Status.COMPLETED).count() == 9


def _admin_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
