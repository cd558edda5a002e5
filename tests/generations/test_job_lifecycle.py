"""The worker side of a job: claim, run through routes, store outputs, settle or release — each once."""

from datetime import timedelta

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ModelRoute
from apps.generations.admin import JobAdmin
from apps.generations.models import Job
from apps.generations.services import job_create, job_refund, job_run, jobs_fail_stuck
from tests.generations.conftest import BrokenProvider, EchoProvider, stored_files, submit

pytestmark = pytest.mark.django_db


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


def test_it_fails_stuck_jobs_and_releases_their_hold_once(alice, text_model, test_providers):
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo")
    job = submit(alice, text_model)
    Job.objects.filter(pk=job.pk).update(status="processing", started_at=timezone.now() - timedelta(hours=2))
    assert jobs_fail_stuck() == 1
    assert jobs_fail_stuck() == 0
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "timeout")
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_it_keeps_nothing_from_a_run_that_finishes_after_its_timeout(
    alice, text_model, test_providers, monkeypatch, media_root
):
    ModelRoute.objects.create(model=text_model, provider="echo", upstream_model="echo")
    job = submit(alice, text_model)
    engine_run = EchoProvider.run  # the real engine, called by the slow stand-in below (not by itself)

    def slow_run(self, **kwargs):
        # While the engine "runs", the sweeper times the job out and releases its hold.
        Job.objects.filter(pk=job.pk).update(started_at=timezone.now() - timedelta(hours=2))
        assert jobs_fail_stuck() == 1
        return engine_run(self, **kwargs)

    monkeypatch.setattr(EchoProvider, "run", slow_run)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "timeout")
    assert job.outputs.count() == 0 and job.staged_files == []
    assert stored_files(media_root) == []  # the run's result was never written
    assert wallet_get(user=alice).balance_micro == 10_000_000
    assert LedgerEntry.objects.filter(wallet__user=alice, kind="refund").count() == 1


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
