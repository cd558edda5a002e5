"""Long upstream jobs (submit, then poll), provider accounts, availability, and the upstream HTTP client."""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
from apps.generations import providers
from apps.generations.models import Job
from apps.generations.providers import OutputData, Pending, Provider, ProviderError, RunResult
from apps.generations.providers.http import UpstreamClient
from apps.generations.services import job_create, job_poll, job_run, jobs_requeue_lost
from kiwiwhale.lib import crypto

pytestmark = pytest.mark.django_db


class SlowUpstream(Provider):
    """An upstream that queues the job and answers on the third poll; `fail_polls` makes polls error first."""

    kind = "slow"
    needs_api_key = False
    fail_polls = 0
    canceled = []

    def run(self, *, upstream_model, params, input):
        return Pending(state={"request_id": "req-1", "polls": 0}, upstream_id="req-1", retry_after=0)

    def poll(self, *, upstream_model, params, input, state):
        if SlowUpstream.fail_polls:
            SlowUpstream.fail_polls -= 1
            raise ProviderError("Upstream 502.", retryable=True)
        if state["polls"] < 2:
            return Pending(state={**state, "polls": state["polls"] + 1}, retry_after=0)
        return RunResult(
            outputs=[OutputData(type="text", content_type="text/plain", file_name="a.txt", text="done")],
            usage={"polls": state["polls"] + 1},
        )

    def cancel(self, *, upstream_model, params, state):
        SlowUpstream.canceled.append(state["request_id"])


class QuickUpstream(Provider):
    kind = "quick"
    needs_api_key = False

    def run(self, *, upstream_model, params, input):
        return RunResult(outputs=[OutputData(type="text", content_type="text/plain", file_name="b.txt", text="b")])


@pytest.fixture
def slow_model(monkeypatch, db):
    monkeypatch.setitem(providers.PROVIDERS, "slow", f"{__name__}.SlowUpstream")
    monkeypatch.setitem(providers.PROVIDERS, "quick", f"{__name__}.QuickUpstream")
    SlowUpstream.fail_polls, SlowUpstream.canceled = 0, []
    polls = []
    monkeypatch.setattr("apps.generations.services.job_poll_enqueue", lambda *, job_id, delay=0: polls.append(job_id))
    for slug in ("slow", "quick"):
        ProviderAccount.objects.create(slug=slug, kind=slug, enabled=True)
    model = AIModel.objects.create(
        public_model="test/slow",
        product_id="test/slow",
        label="Slow",
        category="text-to-text",
        input_schema={"type": "object", "properties": {"prompt": {"type": "string"}}},
        price_micro=1_000_000,
    )
    ModelRoute.objects.create(model=model, provider="slow", upstream_model="slow-1", priority=1)
    model.polls = polls
    return model


def test_it_frees_the_worker_while_an_upstream_job_runs_and_polls_it_to_the_end(alice, slow_model):
    job = job_create(user=alice, model=slow_model, input={"prompt": "x"})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "processing" and job.upstream_id == "req-1" and job.poll_at is not None
    assert slow_model.polls == [job.pk]
    for _ in range(3):
        job_poll(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "completed" and job.usage == {"polls": 3} and job.outputs.get().text == "done"
    assert wallet_get(user=alice).balance_micro == 9_000_000
    job_poll(job_id=job.pk)  # a late duplicate poll does nothing
    assert job.outputs.count() == 1


def test_it_rides_out_transient_poll_errors(alice, slow_model):
    SlowUpstream.fail_polls = 2
    job = job_create(user=alice, model=slow_model, input={"prompt": "x"})
    job_run(job_id=job.pk)
    for _ in range(5):
        job_poll(job_id=job.pk)
    assert Job.objects.get(pk=job.pk).status == "completed"


def test_it_falls_back_to_the_next_route_when_polling_keeps_failing(alice, slow_model):
    ModelRoute.objects.create(model=slow_model, provider="quick", upstream_model="q", priority=2)
    SlowUpstream.fail_polls = 100
    job = job_create(user=alice, model=slow_model, input={"prompt": "x"})
    job_run(job_id=job.pk)
    for _ in range(6):
        job_poll(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "completed" and job.provider == "quick" and job.outputs.get().text == "b"
    assert ProviderAccount.objects.get(slug="slow").last_error == "Upstream 502."


def test_it_fails_and_refunds_once_when_polling_fails_with_no_route_left(alice, slow_model):
    SlowUpstream.fail_polls = 100
    job = job_create(user=alice, model=slow_model, input={"prompt": "x"})
    job_run(job_id=job.pk)
    for _ in range(10):
        job_poll(job_id=job.pk)
    assert Job.objects.get(pk=job.pk).status == "failed"
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_it_cancels_a_waiting_upstream_job_and_asks_the_upstream_to_stop(alice, alice_api, slow_model):
    job = job_create(user=alice, model=slow_model, input={"prompt": "x"})
    job_run(job_id=job.pk)
    response = alice_api.post("/api/v1/cancel.php", {"job_id": job.pk}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert SlowUpstream.canceled == ["req-1"]
    assert wallet_get(user=alice).balance_micro == 10_000_000
    job_poll(job_id=job.pk)
    assert Job.objects.get(pk=job.pk).status == "canceled"


def test_it_polls_again_jobs_whose_poll_message_was_lost(alice, slow_model):
    job = job_create(user=alice, model=slow_model, input={"prompt": "x"})
    job_run(job_id=job.pk)
    slow_model.polls.clear()
    Job.objects.filter(pk=job.pk).update(poll_at=timezone.now() - timedelta(minutes=10))
    assert jobs_requeue_lost() == 1
    assert slow_model.polls == [job.pk]


def test_a_model_is_served_only_once_its_provider_account_is_enabled_with_a_key(catalog, anon_api, monkeypatch):
    monkeypatch.setitem(providers.PROVIDERS, "fal", f"{__name__}.QuickUpstream")
    monkeypatch.setattr(QuickUpstream, "needs_api_key", True)

    def served():
        return {m["public_model"] for m in anon_api.get("/api/v1/models.php").json()["models"]}

    assert "z-image" not in served()
    account = ProviderAccount.objects.get(slug="fal")  # created, switched off, by the catalog seed
    account.enabled = True
    account.save()
    assert "z-image" not in served()  # no key yet
    account.set_api_key("fal-secret")
    account.save()
    assert "z-image" in served()


def test_it_stores_provider_keys_encrypted_and_the_admin_never_shows_them(admin_client, catalog):
    response = admin_client.post(
        f"/admin/catalog/provideraccount/{ProviderAccount.objects.get(slug='fal').pk}/change/",
        {
            "slug": "fal",
            "kind": "fal",
            "label": "fal.ai",
            "enabled": "on",
            "base_url": "",
            "options": "{}",
            "api_key": "sk-very-secret-123",
        },
    )
    assert response.status_code == 302
    account = ProviderAccount.objects.get(slug="fal")
    assert account.enabled
    assert "sk-very-secret-123" not in account.api_key_encrypted
    assert account.api_key == "sk-very-secret-123"
    page = admin_client.get(f"/admin/catalog/provideraccount/{account.pk}/change/")
    assert b"sk-very-secret-123" not in page.content and b"api_key_encrypted" not in page.content


def test_it_decrypts_with_rotated_keys_and_refuses_a_foreign_token(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["old-key"]
    token = crypto.encrypt("secret")
    settings.FIELD_ENCRYPTION_KEYS = ["new-key", "old-key"]
    assert crypto.decrypt(token) == "secret"
    settings.FIELD_ENCRYPTION_KEYS = ["other"]
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token)


class _Flaky(BaseHTTPRequestHandler):
    script = []

    def do_GET(self):
        status, headers, body = _Flaky.script.pop(0) if _Flaky.script else (200, {}, b'{"ok": true}')
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_server(settings):
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_the_client_retries_429_and_5xx_then_succeeds(flaky_server):
    _Flaky.script = [(429, {"Retry-After": "0"}, b""), (503, {}, b"")]
    with UpstreamClient(base_url=flaky_server, provider="Test") as client:
        assert client.json("GET", "/x") == {"ok": True}


@pytest.mark.parametrize(
    ("script", "code", "retryable"),
    [
        ([(500, {}, b"")] * 3, "upstream_error", True),
        ([(429, {}, b"")] * 3, "upstream_rate_limited", True),
        ([(401, {}, b'{"detail": "bad key"}')], "upstream_auth", False),
        ([(422, {}, b'{"detail": [{"msg": "prompt too long"}]}')], "upstream_rejected", False),
        ([(200, {}, b"<html>")], "upstream_malformed", True),
    ],
)
def test_the_client_maps_upstream_failures_to_typed_errors(flaky_server, script, code, retryable):
    _Flaky.script = list(script)
    with UpstreamClient(base_url=flaky_server, provider="Test") as client, pytest.raises(ProviderError) as info:
        client.json("GET", "/x")
    assert (info.value.code, info.value.retryable) == (code, retryable)
    assert "bad key" not in info.value.message or code != "upstream_auth"


def test_the_client_turns_a_timeout_into_a_retryable_error(settings):
    settings.UPSTREAM_RETRIES = 0
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts, never answers
    try:
        client = UpstreamClient(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}", provider="Test", timeout=0.3)
        with pytest.raises(ProviderError) as info:
            client.json("GET", "/x")
        assert (info.value.code, info.value.retryable) == ("upstream_timeout", True)
    finally:
        listener.close()


def test_it_maps_the_input_to_the_upstreams_names():
    from apps.generations.providers import input_for_upstream

    params = {"rename": {"num_images": "n"}, "drop": ["seed"], "fixed": {"quality": "high"}, "other": 1}
    assert input_for_upstream({"prompt": "p", "num_images": 2, "seed": 3}, params) == {
        "prompt": "p",
        "n": 2,
        "quality": "high",
    }
