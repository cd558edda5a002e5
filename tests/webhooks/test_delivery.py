"""Job webhooks end to end: jobs run by a live Celery worker, events POSTed to a loopback receiver and verified
with the `standardwebhooks` library, as a receiver would."""

import base64
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection
from rest_framework.test import APIClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import webhook_deliveries_sweep
from apps.webhooks.tasks import webhook_attempt as webhook_attempt_task
from tests.conftest import wait_for_job
from tests.webhooks.conftest import queue_use

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

IMAGE = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}


def generate(client, **fields) -> str:
    response = client.post("/api/v1/generate.php", {**IMAGE, **fields}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()["job_id"]


def deliveries(client, job_id: str) -> list[dict]:
    response = client.get("/api/v1/webhook_deliveries.php", {"job_id": job_id})
    assert response.status_code == 200, response.json()
    return response.json()["deliveries"]


def wait_for_delivery(client, job_id: str, status: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    found = []
    while time.monotonic() < deadline:
        found = [d for d in deliveries(client, job_id) if d["status"] == status]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"No {status} delivery for {job_id} within {timeout} s: {deliveries(client, job_id)}")


def secret_of(client) -> str:
    return client.get("/api/v1/webhook_secret.php").json()["secret"]


def test_it_posts_a_signed_event_with_the_job_as_jobs_php_shows_it(
    on_webhook_worker, receiver, catalog, alice, alice_api
):
    secret = secret_of(alice_api)
    job_id = generate(alice_api, webhook_url=receiver.url)
    job = wait_for_job(alice_api, job_id)
    assert job["status"] == "completed"

    [(headers, body)] = receiver.wait_for(1)
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "job.completed"
    assert event["data"] == alice_api.get("/api/v1/jobs.php", {"job_id": job_id}).json()
    assert event["data"]["outputs"][0]["url"].startswith("http://testserver/")
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"].startswith("msg_")

    delivery = wait_for_delivery(alice_api, job_id, "delivered")
    assert delivery["webhook_id"] == headers["webhook-id"]
    assert delivery["type"] == "job.completed" and delivery["attempts"] == 1 and delivery["last_status_code"] == 200
    assert delivery["payload"] == event
    assert [(a["attempt"], a["status_code"]) for a in delivery["history"]] == [(1, 200)]
    time.sleep(1.5)
    assert len(receiver.requests) == 1, "the default events are the terminal ones: no job.started"

    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"not the secret of this account").decode()).verify(body, headers)


def test_it_retries_after_a_500_with_the_same_id_until_a_2xx(on_webhook_worker, receiver, catalog, alice, alice_api):
    receiver.statuses = [500, 503]
    secret = secret_of(alice_api)
    job_id = generate(alice_api, webhook_url=receiver.url)

    tries = receiver.wait_for(3)
    ids = {headers["webhook-id"] for headers, _ in tries}
    assert len(ids) == 1, "every try of one event carries the same webhook-id"
    assert len({body for _, body in tries}) == 1, "and the same body"
    for headers, body in tries:
        assert Webhook(secret).verify(body, headers)["type"] == "job.completed"  # each try is signed anew

    delivery = wait_for_delivery(alice_api, job_id, "delivered")
    assert delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["history"]] == [500, 503, 200]
    assert delivery["history"][0]["error"] == "The receiver answered HTTP 500."
    assert delivery["next_attempt_at"] is None and delivery["delivered_at"]
    time.sleep(2.5)
    assert len(receiver.requests) == 3, "nothing more after the 2xx"


def test_it_gives_up_after_the_last_try(on_webhook_worker, receiver, catalog, alice, alice_api):
    receiver.statuses = [500] * 20
    job_id = generate(alice_api, webhook_url=receiver.url)
    delivery = wait_for_delivery(alice_api, job_id, "failed", timeout=60)
    assert delivery["attempts"] == 7  # the first try and one per wait of WEBHOOK_RETRY_SCHEDULE (6 here)
    assert len(receiver.requests) == 7
    assert delivery["last_status_code"] == 500 and delivery["next_attempt_at"] is None


def test_a_duplicated_task_message_never_delivers_twice(on_webhook_worker, receiver, catalog, alice, alice_api):
    receiver.delay = 1.0  # the receiver is slow, so the copies of the message race the first try
    job_id = generate(alice_api, webhook_url=receiver.url)
    receiver.wait_for(1)
    delivery_id = WebhookDelivery.objects.get(job_id=job_id).pk
    for _ in range(6):  # the broker delivering the message of try 1 again, and stray copies of try 2
        webhook_attempt_task.delay(delivery_id, 1)
        webhook_attempt_task.delay(delivery_id, 2)
    wait_for_delivery(alice_api, job_id, "delivered")
    webhook_deliveries_sweep()
    time.sleep(3)
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get(pk=delivery_id).attempts == 1


def test_it_sends_only_the_events_asked_for(on_webhook_worker, receiver, catalog, alice, alice_api):
    job_id = generate(alice_api, webhook_url=receiver.url, webhook_events=["started", "failed"])
    assert wait_for_job(alice_api, job_id)["status"] == "completed"
    [(headers, body)] = receiver.wait_for(1)
    event = Webhook(secret_of(alice_api)).verify(body, headers)
    assert event["type"] == "job.started"
    assert event["data"]["status"] == "processing" and event["data"]["job_id"] == job_id
    time.sleep(1.5)
    assert len(receiver.requests) == 1, "job.completed was not asked for"


def test_a_failed_job_sends_job_failed(on_webhook_worker, receiver, catalog, alice, alice_api):
    # Nothing listens on port 9: the upload fails inside the worker.
    body = {"model": "kiwiwhale/upload", "input": {"file_url": "http://127.0.0.1:9/nothing"}}
    response = alice_api.post("/api/v1/generate.php", {**body, "webhook_url": receiver.url}, format="json")
    job_id = response.json()["job_id"]
    assert wait_for_job(alice_api, job_id)["status"] == "failed"
    [(headers, body)] = receiver.wait_for(1)
    event = Webhook(secret_of(alice_api)).verify(body, headers)
    assert event["type"] == "job.failed" and event["data"]["error"]["code"] == "fetch_failed"


def test_a_job_canceled_by_the_api_is_told_by_the_worker(on_webhook_worker, receiver, catalog, alice, alice_api):
    webhook_worker = on_webhook_worker
    queue_use(f"{webhook_worker}-nobody")  # the job's message goes where no worker listens: it stays queued
    try:
        job_id = generate(alice_api, webhook_url=receiver.url)
        queue_use(webhook_worker)
        assert alice_api.post("/api/v1/cancel.php", {"job_id": job_id}, format="json").status_code == 200
        [(headers, body)] = receiver.wait_for(1)
    finally:
        queue_use(webhook_worker)
    event = Webhook(secret_of(alice_api)).verify(body, headers)
    assert event["type"] == "job.canceled" and event["data"]["status"] == "canceled"
    assert "python-httpx" not in headers.get("user-agent", "") and headers["user-agent"].startswith("KiwiWhale")


def test_the_sweeper_sends_a_try_whose_message_was_lost(on_webhook_worker, receiver, catalog, alice, alice_api):
    webhook_worker = on_webhook_worker
    queue_use(f"{webhook_worker}-nobody")  # the job and its first try are sent where nobody listens
    try:
        job_id = generate(alice_api, webhook_url=receiver.url, webhook_events=["canceled"])
        alice_api.post("/api/v1/cancel.php", {"job_id": job_id}, format="json")
    finally:
        queue_use(webhook_worker)
    delivery = WebhookDelivery.objects.get(job_id=job_id)
    assert delivery.attempts == 0 and receiver.requests == []
    assert webhook_deliveries_sweep() == 0, "not yet late"
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.next_attempt_at.replace(year=2000))
    assert webhook_deliveries_sweep() == 1
    [(headers, _)] = receiver.wait_for(1)
    assert headers["webhook-id"] == delivery.pk
    assert webhook_deliveries_sweep() == 0


def test_an_admin_redelivers_with_the_same_id(on_webhook_worker, receiver, catalog, alice, alice_api, admin_client):
    job_id = generate(alice_api, webhook_url=receiver.url)
    first = wait_for_delivery(alice_api, job_id, "delivered")
    response = admin_client.post(
        "/admin/webhooks/webhookdelivery/",
        {"action": "redeliver", "_selected_action": [first["webhook_id"]]},
        follow=True,
    )
    assert response.status_code == 200 and b"sent again" in response.content
    tries = receiver.wait_for(2)
    assert tries[0][0]["webhook-id"] == tries[1][0]["webhook-id"] == first["webhook_id"]
    deadline = time.monotonic() + 10
    while WebhookDelivery.objects.get(pk=first["webhook_id"]).status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.1)
    again = deliveries(alice_api, job_id)[0]
    assert again["status"] == "delivered" and again["attempts"] == 2


def test_it_refuses_a_private_address_by_default(celery_worker_process, receiver, catalog, alice, alice_api):
    # The suite's own worker runs with FETCH_ALLOW_PRIVATE_ADDRESSES off, as production does.
    assert "webhooks" not in django_settings.CELERY_TASK_DEFAULT_QUEUE, "the jobs go to the suite's worker"
    job_id = generate(alice_api, webhook_url=receiver.url)
    assert wait_for_job(alice_api, job_id)["status"] == "completed"
    delivery = wait_for_delivery(alice_api, job_id, "failed")
    assert delivery["last_error"] == "The URL points to a private, loopback or reserved address."
    assert delivery["attempts"] == 1, "a refused URL is not retried: it would be refused again"
    assert delivery["history"][0]["status_code"] is None
    assert receiver.requests == []


def test_two_first_requests_at_once_get_one_secret(alice, alice_api):
    secrets, errors = [], []

    def get():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_api.raw_key}")
        try:
            secrets.append(client.get("/api/v1/webhook_secret.php").json()["secret"])
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=get) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(secrets) == 4 and len(set(secrets)) == 1
    assert secrets[0].startswith("whsec_")
