"""The production shape, run rather than only written: two web servers, two Celery workers and one beat, each
started with the very command that docker-compose.yml and the Dockerfile run (scripts/web, scripts/worker,
scripts/beat), on the machine's PostgreSQL and Redis.

Across them: the agent quickstart, a 64-way race on one wallet, and a worker stopped while others keep serving.
"""

import collections
import concurrent.futures
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from apps.accounts.services import api_key_create
from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.conftest import ROOT, _free_port, make_user, service_env, wait_for_http

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

CHEAP = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}


class Shape:
    """The processes of one installation; each is stopped at teardown, politely and then by force."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.queue = f"prod-shape-{uuid.uuid4().hex[:8]}"  # not the session worker's: only these workers take jobs
        self.processes: dict[str, subprocess.Popen] = {}
        self.web: list[str] = []

    def start(self, name: str, script: str, **env) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [str(ROOT / "scripts" / script)],
            cwd=ROOT,
            env=service_env(CELERY_QUEUE=self.queue, DEBUG="0", LOG_LEVEL="INFO", **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log = log
        self.processes[name] = process
        return process

    def start_web(self, name: str) -> str:
        port = _free_port()
        process = self.start(
            name,
            "web",
            HOST="127.0.0.1",
            PORT=str(port),
            WEB_CONCURRENCY="1",
            PROMETHEUS_MULTIPROC_DIR=str(self.tmp / f"{name}-metrics"),
        )
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", process, process.log.name)
        self.web.append(base)
        return base

    def start_worker(self, name: str) -> subprocess.Popen:
        return self.start(name, "worker", WORKER_CONCURRENCY="2")

    def wait_workers(self, count: int) -> None:
        from kiwiwhale.celery import app

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            mine = [r for r in replies if any(name.startswith("celery@") for name in r)]
            if len(mine) >= count:
                return
        pytest.fail(f"{count} workers did not answer within 60 s")

    def stop(self, name: str, signum=signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        process.send_signal(signum)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.log.close()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


@pytest.fixture
def shape(tmp_path, catalog, static_collected):
    shape = Shape(tmp_path)
    yield shape
    shape.stop_all()


def _wait_job(base: str, headers: dict, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{base}/api/v1/jobs.php", params={"job_id": job_id}, headers=headers).json()
        if job["status"] in ("completed", "failed", "canceled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"{job_id} did not finish: {job}")


def test_two_webs_two_workers_and_a_beat_serve_the_quickstart_a_race_and_a_worker_stop(shape):
    web_a, web_b = shape.start_web("web-a"), shape.start_web("web-b")
    shape.start_worker("worker-1")
    shape.start_worker("worker-2")
    beat = shape.start("beat", "beat", BEAT_SCHEDULE=str(shape.tmp / "celerybeat-schedule"))
    shape.wait_workers(2)

    # The quickstart, registered on one web server and served by the other.
    registered = httpx.post(f"{web_a}/api/v1/agent_register.php", json={"name": "Prod Agent"})
    assert registered.status_code == 201
    key, user_id = registered.json()["api_key"], registered.json()["user_id"]
    headers = {"Authorization": f"Bearer {key}"}
    from django.core.management import call_command

    call_command("grant_credits", str(user_id), "0.1", "--reason", "production shape")  # ten jobs at 0.01
    accepted = httpx.post(f"{web_b}/api/v1/generate.php", json=CHEAP, headers=headers)
    assert accepted.status_code == 202
    job = _wait_job(web_a, headers, accepted.json()["job_id"])
    assert job["status"] == "completed"
    image = httpx.get(job["outputs"][0]["url"])
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"

    # 64 simultaneous submits, split over both web servers, on a wallet that now pays for 9 more.
    def submit(index: int):
        try:
            return httpx.post(
                f"{(web_a, web_b)[index % 2]}/api/v1/generate.php", json=CHEAP, headers=headers
            ).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        codes = collections.Counter(pool.map(submit, range(64)))
    assert codes == {202: 9, 402: 55}
    assert wallet_get(user=Job.objects.get(pk=job["job_id"]).user).balance_micro == 0

    # Stop one worker; the other finishes every job, each charged once.
    shape.stop("worker-1")
    deadline = time.monotonic() + 90
    while Job.objects.filter(user_id=user_id).exclude(status="completed").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(Job.objects.filter(user_id=user_id).values_list("status", flat=True)) == {"completed"}
    assert LedgerEntry.objects.filter(wallet__user_id=user_id, kind=LedgerEntry.Kind.DEBIT).count() == 10

    # New work after the stop still runs, submitted to either server.
    user = make_user("late", credits="1")
    _, late_key = api_key_create(user=user, name="late")
    late = {"Authorization": f"Bearer {late_key}"}
    ids = [httpx.post(f"{base}/api/v1/generate.php", json=CHEAP, headers=late).json()["job_id"] for base in shape.web]
    assert [_wait_job(web_a, late, job_id)["status"] for job_id in ids] == ["completed", "completed"]

    assert beat.poll() is None, "beat exited"
    for base in shape.web:
        assert httpx.get(f"{base}/readyz").json()["ok"] is True


def test_compose_and_the_dockerfile_run_the_same_commands_as_this_test():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["web"]["command"].strip().endswith('exec scripts/web"')
    assert services["worker"]["command"] == "scripts/worker"
    assert services["beat"]["command"] == "scripts/beat"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["scripts/web"]' in dockerfile and "COPY scripts ./scripts" in dockerfile
    makefile = (ROOT / "Makefile").read_text()
    assert "web=scripts/web worker=scripts/worker beat=scripts/beat" in makefile
