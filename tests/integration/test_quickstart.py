"""The agent quickstart end to end over HTTP, with a real Celery worker process on the real broker and database."""

import io
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from PIL import Image
from rest_framework.test import APIClient

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.conftest import wait_for_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_it_runs_the_agent_quickstart(celery_worker_process, catalog):
    anon = APIClient()
    registered = anon.post("/api/v1/agent_register.php", {"name": "Quickstart Agent"}, format="json")
    assert registered.status_code == 201
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Bearer {registered.json()['api_key']}")

    assert agent.get("/api/v1/credits.php").json()["credits"] == 0
    models = agent.get("/api/v1/models.php").json()["models"]
    model = next(m for m in models if m["category"] == "text-to-image")
    request = {
        "model": model["public_model"],
        "input": {"prompt": "a dog on a skateboard", "width": 640, "height": 360},
    }

    refused = agent.post("/api/v1/generate.php", request, format="json")
    assert refused.status_code == 402 and refused.json()["error"] == "insufficient_credits"

    call_command("grant_credits", str(registered.json()["user_id"]), "1", "--reason", "quickstart")
    accepted = agent.post("/api/v1/generate.php", request, format="json")
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]

    job = wait_for_job(agent, job_id)
    assert job["status"] == "completed", job
    assert job["cost_credits"] == model["cost_credits"]
    output = job["outputs"][0]
    download = APIClient().get(output["url"])  # no Authorization header: the URL is the capability
    assert download.status_code == 200
    image = Image.open(io.BytesIO(b"".join(download.streaming_content)))
    assert image.format == "PNG" and image.size == (640, 360)
    assert agent.get("/api/v1/credits.php").json()["credits"] == 1 - model["cost_credits"]


def test_it_releases_the_hold_when_the_worker_fails_the_job(celery_worker_process, catalog, alice, alice_api):
    # The upload engine refuses a loopback URL (SSRF rule), so the job fails inside the real worker.
    body = {"model": "kiwiwhale/upload", "input": {"file_url": "http://127.0.0.1:9/secret"}}
    from apps.catalog.models import AIModel

    AIModel.objects.filter(public_model="kiwiwhale/upload").update(price_micro=50_000)
    job_id = alice_api.post("/api/v1/generate.php", body, format="json").json()["job_id"]
    job = wait_for_job(alice_api, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "fetch_failed"
    assert "private" in job["error"]["message"] or "loopback" in job["error"]["message"]
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_fifty_concurrent_generations_on_a_wallet_that_pays_for_ten(celery_worker_process, catalog, bob):
    if connection.vendor != "postgresql":
        pytest.fail("Concurrency is proven on PostgreSQL (make test sets DATABASE_URL).")
    from apps.accounts.services import api_key_create
    from apps.billing.services import credits_grant

    credits_grant(user=bob, amount_micro=100_000, reason="ten jobs", idempotency_key="test:ten")
    _, raw = api_key_create(user=bob)
    statuses, barrier = [], threading.Barrier(50)

    def submit(index):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        barrier.wait()
        try:
            response = client.post(
                "/api/v1/generate.php",
                {
                    "model": "local/procedural-image",
                    "input": {"prompt": f"n{index}", "width": 64, "height": 64},
                },
                format="json",
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [202] * 10 + [402] * 40
    assert wallet_get(user=bob).balance_micro == 0
    assert LedgerEntry.objects.filter(wallet__user=bob, kind="debit").count() == 10
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    for job in Job.objects.filter(user=bob):
        assert wait_for_job(client, job.pk)["status"] == "completed"
    assert min(LedgerEntry.objects.filter(wallet__user=bob).values_list("balance_after_micro", flat=True)) == 0
