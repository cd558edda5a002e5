"""Per-account limits on free work and on generate.php (a zero-credit agent stored 33.9 MB in 20 free uploads)."""

import pytest

from apps.generations.models import Job
from apps.generations.services import job_delete, job_run

pytestmark = pytest.mark.django_db

UPLOAD = {"model": "kiwiwhale/upload", "input": {"file_url": "data:text/plain,hello%20world"}}
PAID = {"model": "local/procedural-image", "input": {"prompt": "a dog", "width": 64, "height": 64}}


def generate(client, body):
    return client.post("/api/v1/generate.php", body, format="json")


def test_it_rate_limits_generate_per_account(catalog, alice_api, charlie_api, settings):
    settings.RATE_GENERATE_ACCOUNT = "3/minute"
    assert [generate(alice_api, PAID).status_code for _ in range(3)] == [202] * 3
    refused = generate(alice_api, PAID)
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 60
    assert generate(charlie_api, PAID).status_code == 202  # another account has its own count
    assert Job.objects.filter(user__username="alice").count() == 3


def test_it_limits_free_uploads_per_account_and_hour(catalog, bob_api, alice_api, settings):
    settings.RATE_FREE_JOBS_ACCOUNT = "2/hour"
    assert [generate(bob_api, UPLOAD).status_code for _ in range(2)] == [202, 202]
    refused = generate(bob_api, UPLOAD)
    assert refused.status_code == 429 and refused.json()["error"] == "rate_limited"
    assert int(refused["Retry-After"]) > 0
    assert Job.objects.filter(user__username="bob").count() == 2
    assert generate(alice_api, UPLOAD).status_code == 202
    assert generate(alice_api, PAID).status_code == 202  # paid work is limited by its price, not this


def test_it_refuses_free_uploads_once_the_account_stores_its_quota(catalog, bob, bob_api, settings):
    settings.QUOTA_STORED_BYTES_ACCOUNT = 10
    first = generate(bob_api, UPLOAD).json()["job_id"]
    job_run(job_id=first)
    assert Job.objects.get(pk=first).outputs.get().file_size == 11
    refused = generate(bob_api, UPLOAD)
    assert refused.status_code == 403 and refused.json()["error"] == "quota_exceeded"
    job_delete(job=Job.objects.get(pk=first))  # deleting a generation frees its bytes
    assert generate(bob_api, UPLOAD).status_code == 202


def test_the_openapi_document_lists_the_quota_answers_of_generate(anon_api):
    responses = anon_api.get("/openapi.json").json()["paths"]["/api/v1/generate.php"]["post"]["responses"]
    assert {"403", "429"} <= set(responses)
