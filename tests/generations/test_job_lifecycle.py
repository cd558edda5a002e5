"""The worker side of a job: claim, run through routes, store outputs, settle or release — each once."""

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
from apps.generations import providers
from apps.generations.admin import JobAdmin
from apps.generations.models import Job
from apps.generations.providers import OutputData, Provider, ProviderError, RunResult
from apps.generations.services import job_create, job_refund, job_run, jobs_fail_stuck, jobs_requeue_lost

pytestmark = pytest.mark.django_db


class BrokenProvider(Provider):
    """A provider whose upstream always answers 5xx (retryable) — a stand-in for an outage."""

    kind = "broken"
    needs_api_key = False
    calls = 0

    def run(self, *, upstream_model, params, input):
        BrokenProvider.calls += 1
        raise ProviderError("Upstream answered 503.", retryable=upstream_model == "retryable")


class EchoProvider(Provider):
    kind = "echo"
    needs_api_key = False

    def run(self, *, upstream_model, params, input):
        return RunResult(
            outputs=[
                OutputData(
                    type="text",
                    content_type="text/plain",
                    file_name="out.txt",
                    content=input["prompt"].encode(),
                    text=input["prompt"],
                )
            ]
        )


@pytest.fixture
def test_providers(monkeypatch, db):
    monkeypatch.setitem(providers.PROVIDERS, "broken", f"{__name__}.BrokenProvider")
    monkeypatch.setitem(providers.PROVIDERS, "echo", f"{__name__}.EchoProvider")
    for slug in ("broken", "echo"):
        ProviderAccount.objects.create(slug=slug, kind=slug, enabled=True)
    BrokenProvider.calls = 0


@pytest.fixture
def text_model(db):
    return AIModel.objects.create(
        public_model="test/echo",
        product_id="test/echo",
        label="Echo",
        category="text-to-text",
        input_schema={"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]},
        price_micro=500_000,
    )


def submit(user, model, prompt="hello"):
    return job_create(user=user, model=model, input={"prompt": prompt})


def test_it_completes_a_job_and_keeps_exactly_the_quote(catalog, alice):
    model = AIModel.objects.get(public_model="local/procedural-image")
    job = job_create(user=alice, model=model, input={"prompt": "x", "width": 80, "height": 64, "seed": 7})
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "completed" and job.provider == "local" and job.usage["seed"] == 7
    assert job.started_at and job.completed_at and job.attempts == 1
    output = job.outputs.get()
    assert (output.width, output.height, output.file_size) == (80, 64, output.file.size)
    assert job.hold.status == "settled" and job.hold.charged_micro == 10_000
    assert wallet_get(user=alice).balance_micro == 9_990_000


def test_it_ignores_a_duplicate_delivery(catalog, alice):
    model = AIModel.objects.get(public_model="local/procedural-image")
    job = job_create(user=alice, model=model, input={"prompt": "x", "width": 64, "height": 64})
    job_run(job_id=job.pk)
    job_run(job_id=job.pk)
    assert job.outputs.count() == 1
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="debit").count() == 1


def test_it_fails_and_releases_the_hold_when_the_provider_fails(alice, text_model, test_providers):
    ModelRoute.objects.create(model=text_model, provider="broken", upstream_model="fatal")
    job = submit(alice, text_model)
    assert wallet_get(user=alice).balance_micro == 9_500_000
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.error_code == "provider_error"
    assert job.error_message == "Upstream answered 503."
    assert wallet_get(user=alice).balance_micro == 10_000_000
    assert job.hold.status == "released"
    refunds = LedgerEntry.objects.filter(wallet__user=alice, kind="refund", reference=job.pk)
    assert [r.amount_micro for r in refunds] == [500_000]


def test_it_falls_back_to_the_next_route_after_a_retryable_error(alice, text_model, test_providers):
    ModelRoute.objects.create(model=text_model, provider="broken", upstream_model="retryable", priority=1)
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo", priority=2)
    job = submit(alice, text_model, "fallback works")
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "completed" and job.provider == "echo" and BrokenProvider.calls == 1
    assert job.outputs.get().text == "fallback works"
    assert wallet_get(user=alice).balance_micro == 9_500_000


def test_it_does_not_fall_back_after_a_permanent_error(alice, text_model, test_providers):
    ModelRoute.objects.create(model=text_model, provider="broken", upstream_model="fatal", priority=1)
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo", priority=2)
    job = submit(alice, text_model)
    job_run(job_id=job.pk)
    assert Job.objects.get(pk=job.pk).status == "failed"


def test_it_refunds_once_when_every_route_fails(alice, text_model, test_providers):
    ModelRoute.objects.create(model=text_model, provider="broken", upstream_model="retryable", priority=1)
    ModelRoute.objects.create(model=text_model, provider="broken", upstream_model="retryable-too", priority=2)
    job = submit(alice, text_model)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and BrokenProvider.calls == 2
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="refund").count() == 1
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_it_records_an_unexpected_crash_as_a_failure_with_a_safe_message(alice, text_model, test_providers):
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo")
    job = job_create(user=alice, model=text_model, input={"prompt": "x"})
    Job.objects.filter(pk=job.pk).update(input={})  # the engine will hit a KeyError
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "internal_error")
    assert "KeyError" not in job.error_message
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_it_re_enqueues_jobs_whose_message_was_lost(alice, text_model, test_providers, monkeypatch):
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo")
    job = submit(alice, text_model)
    fresh = submit(alice, text_model)
    Job.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(minutes=10))
    enqueued = []
    monkeypatch.setattr("apps.generations.services.job_enqueue", lambda *, job_id: enqueued.append(job_id))
    assert jobs_requeue_lost() == 1
    assert enqueued == [job.pk] and fresh.pk not in enqueued
    assert jobs_requeue_lost() == 0  # enqueued_at moved on: not again at the next sweep


def test_it_fails_stuck_jobs_and_releases_their_hold_once(alice, text_model, test_providers):
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo")
    job = submit(alice, text_model)
    Job.objects.filter(pk=job.pk).update(status="processing", started_at=timezone.now() - timedelta(hours=2))
    assert jobs_fail_stuck() == 1
    assert jobs_fail_stuck() == 0
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "timeout")
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_it_keeps_nothing_from_a_run_that_finishes_after_its_timeout(alice, text_model, test_providers, monkeypatch):
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo")
    job = submit(alice, text_model)

    def slow_run(self, **kwargs):
        # While the engine "runs", the sweeper times the job out and releases its hold.
        Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=2))
        jobs_fail_stuck()
        return EchoProvider.run(self, **kwargs)

    monkeypatch.setattr(EchoProvider, "run", slow_run)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.outputs.count() == 0
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_admins_can_refund_a_completed_job_once(catalog, alice, admin_user):
    model = AIModel.objects.get(public_model="local/procedural-image")
    job = job_create(user=alice, model=model, input={"prompt": "x", "width": 64, "height": 64})
    job_run(job_id=job.pk)
    request = RequestFactory().post("/admin/")
    request.user = admin_user
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    JobAdmin(Job, site).refund(request, Job.objects.filter(pk=job.pk))
    JobAdmin(Job, site).refund(request, Job.objects.filter(pk=job.pk))
    assert wallet_get(user=alice).balance_micro == 10_000_000
    entry = LedgerEntry.objects.get(wallet__user=alice, kind="refund")
    assert entry.created_by == admin_user and entry.reference == job.pk
    assert job_refund(job=job, reason="again") is False


def test_admins_can_retry_a_failed_job_as_a_new_charged_job(alice, text_model, test_providers, admin_user):
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo")
    job = submit(alice, text_model)
    Job.objects.filter(pk=job.pk).update(status="processing")
    from apps.generations.services import job_fail

    job_fail(job=job, code="provider_error", message="x")
    request = RequestFactory().post("/admin/")
    request.user = admin_user
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    JobAdmin(Job, site).retry(request, Job.objects.filter(pk=job.pk))
    retried = Job.objects.exclude(pk=job.pk).get()
    assert retried.input == job.input and retried.status == "queued"
    assert wallet_get(user=alice).balance_micro == 9_500_000


def test_admin_pages_for_jobs_and_the_ledger_render(admin_client, catalog, alice):
    model = AIModel.objects.get(public_model="local/procedural-image")
    job = job_create(user=alice, model=model, input={"prompt": "x", "width": 64, "height": 64})
    job_run(job_id=job.pk)
    for url in [
        "/admin/generations/job/",
        reverse("admin:generations_job_change", args=[job.pk]),  # quotes the "_" of job ids
        "/admin/billing/ledgerentry/",
        "/admin/billing/wallet/",
        "/admin/catalog/aimodel/",
        "/admin/accounts/apikey/",
        f"/admin/billing/wallet/{alice.wallet.pk}/credits/",
    ]:
        assert admin_client.get(url).status_code == 200, url


def test_admins_grant_credits_from_the_wallet_page(admin_client, admin_user, bob):
    url = f"/admin/billing/wallet/{bob.wallet.pk}/credits/"
    response = admin_client.post(url, {"amount": "3.5", "reason": "goodwill"})
    assert response.status_code == 302
    entry = LedgerEntry.objects.get(wallet__user=bob)
    assert (entry.kind, entry.amount_micro, entry.created_by) == ("grant", 3_500_000, admin_user)
    admin_client.post(url, {"amount": "-10", "reason": "too much"})  # refused: would overdraw
    assert wallet_get(user=bob).balance_micro == 3_500_000
