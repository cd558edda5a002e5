"""Personas, API clients, a live Celery worker and the ledger invariant, for every test.

Personas: `alice` has credits, `bob` has none, `charlie` is another account (isolation).
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.services import account_setup, api_key_create
from apps.affiliates.services import affiliate_ledger_check
from apps.billing import money
from apps.billing.services import credits_grant, ledger_check
from apps.catalog.services import catalog_seed

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    # Test tweaks: plain http, a throwaway media folder shared with the worker process.
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="kiwiwhale-media-"))
    Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # The fake upstream servers listen on loopback, as an admin's self-hosted engine would on the LAN: allowed for
    # provider base URLs only (user-supplied URLs still may not reach it), as FETCH_PRIVATE_HOST_ALLOWLIST says.
    settings.FETCH_PRIVATE_HOST_ALLOWLIST = ["127.0.0.1"]
    # Each run gets its own queue, so a leftover message of an earlier run is never picked up.
    settings.CELERY_TASK_DEFAULT_QUEUE = f"kiwiwhale-test-{uuid.uuid4().hex[:8]}"
    from kiwiwhale.celery import app

    app.conf.task_default_queue = settings.CELERY_TASK_DEFAULT_QUEUE
    _flush_retried_on_deadlock()


def _flush_retried_on_deadlock():
    """A transactional test's teardown truncates every table in one statement, taking their locks one by one. A
    live process of the session (a server's wait re-reading its job, a worker's task) may be reading two of those
    tables in one query at that moment; PostgreSQL then ends the deadlock by failing one side, sometimes the
    TRUNCATE, and the next test would find the rows still there. The test database's flush is retried: the
    reader is done by then. (Test infrastructure only: no code under test goes through it.)"""
    from django.db import OperationalError
    from django.db.backends.postgresql.operations import DatabaseOperations

    flush = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return flush(self, sql_list)
            except OperationalError as exc:
                if "deadlock detected" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    DatabaseOperations.execute_sql_flush = execute_sql_flush


def pytest_collection_modifyitems(session, config, items):
    # Browser tests run last: Playwright's sync API keeps an event loop running in the main thread for as long as
    # the session's Chromium lives, and an async view called in-process (Prefer: wait, /v1, asyncio.run) cannot
    # run its own loop there. Sorting is stable, so every other test keeps its order.
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


def pytest_sessionfinish(session, exitstatus):
    # CI reports zero skipped tests: a skip there is a failure.
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("FAIL_ON_SKIP") and reporter and reporter.stats.get("skipped"):
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _ledger_invariant(request):
    """After every test that touched the database: each wallet and each commission account balances, and a
    wallet is negative only as far as clawbacks (refunds, lost disputes) took it (see billing's ledger_check)."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    yield
    if uses_db:
        problems = ledger_check()
        assert not problems, "Ledger invariant broken: " + "; ".join(map(str, problems))
        commission_problems = affiliate_ledger_check()
        assert not commission_problems, "Commission ledger broken: " + "; ".join(commission_problems)


@pytest.fixture
def catalog(db):
    catalog_seed()


def make_user(username: str, *, credits: str = "0", account_type: str = User.AccountType.HUMAN) -> User:
    user = User.objects.create_user(
        username=username,
        email=f"{username}@example.com",
        password="pw-for-tests-1",
        account_type=account_type,
    )
    account_setup(user=user)
    amount = money.credits_to_micro(credits)
    if amount:
        credits_grant(user=user, amount_micro=amount, reason="test", idempotency_key=f"test:{username}")
    return user


@pytest.fixture
def alice(db):
    return make_user("alice", credits="10")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def charlie(db):
    return make_user("charlie", credits="10")


def client_for(user) -> APIClient:
    _, raw = api_key_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.raw_key = raw
    return client


@pytest.fixture
def alice_api(alice):
    return client_for(alice)


@pytest.fixture
def bob_api(bob):
    return client_for(bob)


@pytest.fixture
def charlie_api(charlie):
    return client_for(charlie)


@pytest.fixture
def anon_api():
    return APIClient()


@pytest.fixture
def broker_queue(settings):
    """A queue of this test's own on the real Redis broker, where its jobs are sent; no worker consumes it unless
    the test starts one (celery_worker_started)."""
    import redis

    from kiwiwhale.celery import app

    name, previous = f"kiwiwhale-own-{uuid.uuid4().hex[:8]}", app.conf.task_default_queue
    settings.CELERY_TASK_DEFAULT_QUEUE = app.conf.task_default_queue = name
    yield name
    app.conf.task_default_queue = previous
    redis.Redis.from_url(app.conf.broker_url).delete(name)


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real `celery worker` process on the real broker, using the test database and media folder."""
    with celery_worker_started(queue=settings.CELERY_TASK_DEFAULT_QUEUE) as worker:
        yield worker


@contextmanager
def celery_worker_started(*, queue: str, env: dict | None = None, log_name: str = "test-worker.log"):
    """Starts a `celery worker` process consuming `queue`; `env` sets that worker's own settings."""
    from kiwiwhale.celery import app

    env = service_env(CELERY_QUEUE=queue, **(env or {}))
    name = f"test-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / log_name, "w")  # noqa: SIM115 - closed at teardown
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "kiwiwhale",
            "worker",
            "--pool=threads",
            "--concurrency=4",
            "--loglevel=info",
            "--without-gossip",
            "--without-mingle",
            "-n",
            name,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"The Celery worker exited; see {log.name}")
        if app.control.ping(destination=[name], timeout=1.0):
            break
    else:
        worker.terminate()
        pytest.fail("The Celery worker did not answer a ping within 60 s.")
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(**extra) -> dict:
    """The environment of a server or worker process that uses this run's test database, media and queue."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("Tests with server processes need PostgreSQL: set DATABASE_URL (make test does).")
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        "DB_CONN_MAX_AGE": "0",
        "SERVE_PLAIN_HTTP": "1",
        "FETCH_PRIVATE_HOST_ALLOWLIST": "127.0.0.1",  # the loopback fakes, as pytest_configure allows in-process
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        **extra,
    }


def wait_for_http(url: str, process: subprocess.Popen, log_name: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The server exited; see {log_name}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    process.terminate()
    pytest.fail(f"The server did not answer at {url} within {timeout} s; see {log_name}")


@pytest.fixture(scope="session")
def static_collected():
    """The hashed static files that a server process with DEBUG off serves (whitenoise's manifest), collected once."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=service_env(DEBUG="0"),
        check=True,
    )


@pytest.fixture(scope="session")
def web_server(django_db_setup, django_db_blocker, static_collected):
    """The real web server (`scripts/web`: uvicorn, ASGI, DEBUG off) on a free port, on the test database.

    Tests that use it write with `transactional_db` so that the server process sees their rows. Yields the
    base URL, e.g. `http://127.0.0.1:40123`.
    """
    port = _free_port()
    (ROOT / "var").mkdir(exist_ok=True)
    log = open(ROOT / "var" / "test-web.log", "w")  # noqa: SIM115 - closed at teardown
    env = service_env(PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="2", DEBUG="0", DB_POOL_MAX_SIZE="8")
    server = subprocess.Popen([str(ROOT / "scripts" / "web")], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/healthz", server, log.name)
    yield base
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by `make test` when missing
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """One Chromium, driven by Playwright, per module of browser tests (never `playwright install`).

    Per module, not per session: Playwright's sync API keeps an event loop running in the main thread while it is
    open, and the Django test client cannot call an async view (generate.php, jobs.php) under a running loop."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Browser tests need Debian's chromium at /usr/bin/chromium: `apt-get install chromium`.")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def wait_for_job(client, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get("/api/v1/jobs.php", {"job_id": job_id}).json()
        if body["status"] in ("completed", "failed", "canceled"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"Job {job_id} did not finish within {timeout} s: {body}")
