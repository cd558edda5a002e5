"""A loopback webhook receiver, and a worker of our own whose settings let it reach the receiver quickly."""

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings as django_settings

from tests.conftest import celery_worker_started

# The webhook worker's own settings: the receiver is on loopback, retries come after 1 s instead of 5 s and more,
# and output URLs are made absolute as the test client's are.
WEBHOOK_WORKER_ENV = {
    "FETCH_ALLOW_PRIVATE_ADDRESSES": "1",
    "WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1,1",
    "SITE_URL": "http://testserver",
}


class Receiver:
    """Records each POST (headers with lower-case names, raw body) and answers the next scripted status (then 200)."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/kiwiwhale"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 60.0) -> list[tuple[dict, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.requests) >= count:
                return list(self.requests)
            time.sleep(0.1)
        raise AssertionError(f"Expected {count} webhook requests within {timeout} s, got {len(self.requests)}")

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def webhook_worker(django_db_setup):
    queue = f"kiwiwhale-test-webhooks-{uuid.uuid4().hex[:8]}"
    with celery_worker_started(queue=queue, env=WEBHOOK_WORKER_ENV, log_name="test-worker-webhooks.log"):
        yield queue


def queue_use(queue: str) -> None:
    """Sends this process's tasks to `queue` from now on."""
    from kiwiwhale.celery import app

    django_settings.CELERY_TASK_DEFAULT_QUEUE = queue
    app.conf.task_default_queue = queue


@pytest.fixture
def on_webhook_worker(webhook_worker):
    """Jobs and webhook tries sent from this test go to the webhook worker (which sends its own there too)."""
    before = django_settings.CELERY_TASK_DEFAULT_QUEUE
    queue_use(webhook_worker)
    yield webhook_worker
    queue_use(before)
