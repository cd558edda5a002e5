"""A request killed mid-way frees its `Idempotency-Key` once its short lease lapses; a living one keeps it.

The killed request is a real process running `idempotent()` on the test database, stopped with SIGKILL while its
work is in progress (nothing of it committed), exactly as a gunicorn worker killed by its master would be.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings
from django.db import connection

from apps.api.models import IdempotencyRecord
from apps.generations.models import Job
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "local/procedural-image"
BODY = {"model": MODEL, "input": {"prompt": "a dog", "width": 64, "height": 64}}

CHILD = """
import sys, time, django
django.setup()
from types import SimpleNamespace
from rest_framework.response import Response
from apps.accounts.models import User
from apps.api.idempotency import idempotent
from apps.catalog.models import AIModel
from apps.generations.models import Job

user = User.objects.get(pk=int(sys.argv[1]))
request = SimpleNamespace(headers={"Idempotency-Key": sys.argv[2]}, data=eval(sys.argv[3]), user=user)

def run():
    # The work has started: a row written inside the request's transaction, never committed.
    model = AIModel.objects.get(public_model="local/procedural-image")
    Job.objects.create(id="job_killed_mid_way", user=user, model=model, input={}, cost_micro=0)
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        print("running", cursor.fetchone()[0], flush=True)
    time.sleep(3600)
    return Response({})

idempotent(request, scope="generate", run=run)
"""


def request_hash(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@pytest.fixture(autouse=True)
def _no_worker_takes_these_jobs():
    # The session's live worker, if up, would run the jobs these tests submit while the teardown truncates the
    # tables: its transaction and the TRUNCATE then deadlock. Their messages go to a queue no worker reads.
    from kiwiwhale.celery import app

    queue, app.conf.task_default_queue = app.conf.task_default_queue, f"nobody-reads-{os.getpid()}"
    yield
    app.conf.task_default_queue = queue


@pytest.fixture
def short_lease(settings):
    settings.IDEMPOTENCY_LEASE_SECONDS = 1.5
    return 1.5


def start_child(user, key: str, lease: float) -> subprocess.Popen:
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kiwiwhale.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "IDEMPOTENCY_LEASE_SECONDS": str(lease),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(user.pk), key, repr(BODY)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline().split()
    assert line and line[0] == "running", child.stderr.read()
    child.backend_pid = int(line[1])
    return child


def backend_gone(pid: int) -> None:
    """Waits until PostgreSQL has ended a killed client's session (and rolled its transaction back): the test's
    teardown truncates every table, which must not meet that session's locks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):
            cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone() is None:
                return
            time.sleep(0.1)
    raise AssertionError(f"PostgreSQL session {pid} of the killed request did not end")


def test_a_key_held_by_a_killed_request_is_free_seconds_later(catalog, alice, alice_api, short_lease):
    child = start_child(alice, "k-killed", short_lease)
    try:
        # While the first request runs (and renews its lease), a retry is told to wait.
        time.sleep(short_lease * 1.5)
        response = alice_api.post("/api/v1/generate.php", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-killed")
        assert response.status_code == 409 and response.json()["error"] == "idempotency_in_progress"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    killed_at = time.monotonic()
    backend_gone(child.backend_pid)
    record = IdempotencyRecord.objects.get(key="k-killed")
    assert record.status == IdempotencyRecord.Status.IN_PROGRESS  # left behind by the killed process
    while True:
        response = alice_api.post("/api/v1/generate.php", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-killed")
        if response.status_code != 409:
            break
        assert time.monotonic() - killed_at < short_lease * 3, "the key stayed held after the lease lapsed"
        time.sleep(0.2)
    assert response.status_code == 202, response.content
    assert not Job.objects.filter(pk="job_killed_mid_way").exists()  # nothing of the killed request committed
    assert Job.objects.count() == 1
    replay = alice_api.post("/api/v1/generate.php", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-killed")
    assert replay.json() == response.json() and replay["Idempotent-Replayed"] == "true"


def test_a_slow_living_request_keeps_its_key_past_the_lease(catalog, alice, short_lease):
    from types import SimpleNamespace

    from rest_framework.response import Response

    from apps.api.idempotency import idempotent

    release = threading.Event()
    answers = []

    def slow_request():
        request = SimpleNamespace(headers={"Idempotency-Key": "k-slow"}, data=BODY, user=alice)

        def run():
            release.wait(30)
            return Response({"done": True}, status=202)

        try:
            answers.append(idempotent(request, scope="generate", run=run).status_code)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_request)
    thread.start()
    try:
        time.sleep(short_lease * 3)  # three leases: only renewals keep the key
        record = IdempotencyRecord.objects.get(key="k-slow")
        assert record.request_hash == request_hash(BODY)
        from tests.conftest import client_for

        retry = client_for(alice).post("/api/v1/generate.php", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-slow")
        assert retry.status_code == 409
    finally:
        release.set()
        thread.join(30)
    assert answers == [202]
    assert IdempotencyRecord.objects.get(key="k-slow").status == IdempotencyRecord.Status.DONE
