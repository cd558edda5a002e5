"""Routing with real adapters: z-image goes to fal.ai first, then to Replicate; a job is charged or refunded once."""

import pytest

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ProviderAccount
from apps.generations.models import Job
from apps.generations.services import job_create, job_poll, job_run
from tests.providers.fakes import answer

pytestmark = pytest.mark.django_db


@pytest.fixture
def both(fal_account, replicate_account, polls):
    return polls


def _z_image_job(user) -> Job:
    return job_create(user=user, model=AIModel.objects.get(public_model="z-image"), input={"prompt": "a whale"})


def _entries(user, kind) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(wallet__user=user, kind=kind))


def test_when_fal_fails_with_a_5xx_replicate_serves_the_job(alice, both, fal_fake, replicate_fake):
    fal_fake.script("POST", *[answer(503, {"detail": "Service unavailable"})] * 3)
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    job.refresh_from_db()

    assert len(fal_fake.seen("POST")) == 3
    assert replicate_fake.seen("POST")[0].path == "/v1/models/prunaai/z-image-turbo/predictions"
    assert (job.status, job.provider) == ("completed", "replicate")
    with job.outputs.get().file.open("rb") as stored:
        assert stored.read() == replicate_fake.files["out-0.png"][0]
    assert "HTTP 503" in ProviderAccount.objects.get(slug="fal").last_error
    assert ProviderAccount.objects.get(slug="replicate").last_success_at is not None
    assert wallet_get(user=alice).balance_micro == 9_950_000
    assert len(_entries(alice, LedgerEntry.Kind.DEBIT)) == 1 and _entries(alice, LedgerEntry.Kind.REFUND) == []


def test_when_polling_fal_keeps_failing_replicate_serves_the_job(alice, both, fal_fake, replicate_fake):
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    fal_fake.script("GET", *[answer(502, b"<html>Bad gateway</html>")] * 100)
    for _ in range(10):
        job_poll(job_id=job.pk)
        job.refresh_from_db()
        if job.status != Job.Status.PROCESSING:
            break
    assert (job.status, job.provider) == ("completed", "replicate")
    assert wallet_get(user=alice).balance_micro == 9_950_000
    # The abandoned fal request was asked to stop: it is not run (and paid) alongside Replicate's.
    [request_id] = fal_fake.jobs
    [cancel] = fal_fake.seen("PUT")
    assert cancel.path == f"/fal-ai/z-image/requests/{request_id}/cancel" and fal_fake.jobs[request_id]["canceled"]
    assert len(_entries(alice, LedgerEntry.Kind.DEBIT)) == 1 and _entries(alice, LedgerEntry.Kind.REFUND) == []


def test_a_content_policy_error_at_poll_time_fails_the_job_and_never_reaches_replicate(
    alice, both, fal_fake, replicate_fake
):
    fal_fake.model_error = (
        422,
        {"detail": [{"loc": ["body", "prompt"], "msg": "The prompt was flagged by the content checker"}]},
    )
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    for _ in range(5):
        job_poll(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.error_code, job.provider) == ("failed", "upstream_failed", "fal")
    assert "flagged by the content checker" in job.error_message
    assert replicate_fake.requests == []
    [refund] = _entries(alice, LedgerEntry.Kind.REFUND)
    assert refund.amount_micro == 50_000 and wallet_get(user=alice).balance_micro == 10_000_000


def test_a_fal_submit_answered_too_late_runs_once_and_nowhere_else(alice, both, fal_fake, replicate_fake, settings):
    # With a 1 s timeout and retries, one job reached fal's submit three times and then Replicate.
    settings.UPSTREAM_TIMEOUT_SECONDS = 0.5
    fal_fake.delays["POST"] = 3
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "upstream_unknown_outcome")
    assert len(fal_fake.seen("POST")) == 1 and len(fal_fake.jobs) == 1
    assert replicate_fake.requests == []
    assert len(_entries(alice, LedgerEntry.Kind.REFUND)) == 1 and wallet_get(user=alice).balance_micro == 10_000_000


def test_when_every_route_fails_the_job_fails_and_is_refunded_once(alice, both, fal_fake, replicate_fake):
    # 503 and 429 are refusals: nothing ran, so each is sent again and then the next route is tried.
    fal_fake.script("POST", *[answer(429, {"detail": "Too many requests"})] * 3)
    replicate_fake.script("POST", *[answer(503, {"detail": "Service unavailable"})] * 3)
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    job_run(job_id=job.pk)  # a duplicate delivery of the task changes nothing
    job_poll(job_id=job.pk)
    job.refresh_from_db()

    assert (job.status, job.error_code) == ("failed", "upstream_error")
    assert "Replicate" in job.error_message  # the last route's error
    assert len(fal_fake.seen("POST")) == 3 and len(replicate_fake.seen("POST")) == 3
    [refund] = _entries(alice, LedgerEntry.Kind.REFUND)
    assert refund.amount_micro == 50_000 and refund.reference == job.pk
    assert wallet_get(user=alice).balance_micro == 10_000_000
