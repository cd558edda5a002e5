"""The webhook endpoints, generate.php's webhook fields, and the delivery rules that need no worker."""

import itertools
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from standardwebhooks import Webhook

from apps.generations.models import Job
from apps.generations.services import job_cancel
from apps.webhooks.models import WebhookDelivery, WebhookSecret
from apps.webhooks.services import webhook_attempt, webhook_redeliver

pytestmark = pytest.mark.django_db

IMAGE = {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64, "height": 64}}


def test_it_creates_one_secret_on_first_get_and_keeps_it(alice_api, alice):
    first = alice_api.get("/api/v1/webhook_secret.php")
    assert first.status_code == 200
    secret = first.json()["secret"]
    assert first.json() == {"success": True, "secret": secret}
    assert secret.startswith("whsec_") and len(Webhook(secret)._whsecret) == 24
    assert alice_api.get("/api/v1/webhook_secret").json()["secret"] == secret  # the clean alias
    assert WebhookSecret.objects.filter(user=alice).count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_encrypted FROM webhooks_webhooksecret")
        [(stored,)] = cursor.fetchall()
    assert secret not in stored and secret.removeprefix("whsec_") not in stored


def test_rotation_gives_a_new_secret_and_signs_with_both_for_a_while(alice_api, alice, settings):
    old = alice_api.get("/api/v1/webhook_secret.php").json()["secret"]
    rotated = alice_api.post("/api/v1/webhook_secret.php")
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_")
    assert alice_api.get("/api/v1/webhook_secret.php").json()["secret"] == new
    row = WebhookSecret.objects.get(user=alice)
    assert row.signing_secrets(now=timezone.now()) == [new, old]
    later = timezone.now() + timedelta(seconds=settings.WEBHOOK_SECRET_GRACE_SECONDS + 1)
    assert row.signing_secrets(now=later) == [new]


def test_each_account_has_its_own_secret(alice_api, charlie_api):
    assert (
        alice_api.get("/api/v1/webhook_secret.php").json()["secret"]
        != charlie_api.get("/api/v1/webhook_secret.php").json()["secret"]
    )


def test_the_webhook_endpoints_need_a_key(anon_api):
    for path in ("/api/v1/webhook_secret.php", "/api/v1/webhook_deliveries.php"):
        response = anon_api.get(path)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert anon_api.post("/api/v1/webhook_secret.php").status_code == 401


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"webhook_url": "ftp://example.com/hook"}, "webhook_url"),
        ({"webhook_url": "javascript:alert(1)"}, "webhook_url"),
        ({"webhook_url": "not a url"}, "webhook_url"),
        ({"webhook_url": "https://user:pw@example.com/hook"}, "webhook_url"),
        ({"webhook_url": "https://example.com/" + "a" * 2000}, "webhook_url"),
        ({"webhook_url": 42}, "webhook_url"),
        ({"webhook_url": "https://example.com:99999/hook"}, "webhook_url"),
        ({"webhook_url": "https://example.com\u0000/hook"}, "webhook_url"),
        ({"webhook_url": "https://example.com/h", "webhook_events": ["done"]}, "webhook_events.0"),
        ({"webhook_url": "https://example.com/h", "webhook_events": "completed"}, "webhook_events"),
        ({"webhook_url": "https://example.com/h", "webhook_events": []}, "webhook_events"),
        ({"webhook_url": "https://example.com/h", "webhook_events": [None]}, "webhook_events.0"),
        ({"webhook_url": "https://example.com/h", "webhook_events": ["started"] * 5}, "webhook_events"),
        ({"webhook_events": ["completed"]}, "webhook_events"),
    ],
)
def test_generate_refuses_bad_webhook_fields_with_a_clear_400(alice_api, catalog, fields, field):
    response = alice_api.post("/api/v1/generate.php", {**IMAGE, **fields}, format="json")
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["error"] == "invalid_request"
    assert field in [detail["field"] for detail in body["details"]], body
    assert not Job.objects.exists()


def test_generate_keeps_the_events_asked_for_in_a_fixed_order(alice_api, catalog, django_capture_on_commit_callbacks):
    events = ["canceled", "started", "canceled"]
    body = {**IMAGE, "webhook_url": "https://example.com/h", "webhook_events": events}
    response = alice_api.post("/api/v1/generate.php", body, format="json")
    assert response.status_code == 202, response.json()
    job = Job.objects.get()
    assert job.webhook_events == ["started", "canceled"]
    assert job.webhook_wants("started") and not job.webhook_wants("completed")


def test_deliveries_are_visible_to_their_owner_only(alice_api, charlie_api, catalog):
    body = {**IMAGE, "webhook_url": "https://example.com/h"}
    job_id = alice_api.post("/api/v1/generate.php", body, format="json").json()["job_id"]
    job_cancel(job=Job.objects.get(pk=job_id))

    mine = alice_api.get("/api/v1/webhook_deliveries.php", {"job_id": job_id})
    assert mine.status_code == 200
    [delivery] = mine.json()["deliveries"]
    assert delivery["type"] == "job.canceled" and delivery["status"] == "pending" and delivery["attempts"] == 0
    assert delivery["payload"]["data"]["job_id"] == job_id
    assert alice_api.get("/api/v1/webhook_deliveries", {"job_id": job_id}).json() == mine.json()  # alias
    assert alice_api.get("/api/v1/webhook_deliveries.php").json()["deliveries"] == [delivery]

    other = charlie_api.get("/api/v1/webhook_deliveries.php", {"job_id": job_id})
    assert other.status_code == 404 and other.json()["error"] == "not_found"
    assert charlie_api.get("/api/v1/webhook_deliveries.php").json()["deliveries"] == []
    assert alice_api.get("/api/v1/webhook_deliveries.php", {"job_id": "job_nope"}).status_code == 404
    garbled = alice_api.get("/api/v1/webhook_deliveries.php", {"job_id": "job_\u0000"})
    assert garbled.status_code == 400 and garbled.json()["error"] == "invalid_request"


def test_an_event_is_recorded_once_and_only_with_its_transition(alice_api, catalog):
    body = {**IMAGE, "webhook_url": "https://example.com/h"}
    job = Job.objects.get(pk=alice_api.post("/api/v1/generate.php", body, format="json").json()["job_id"])
    assert job_cancel(job=job) and not job_cancel(job=job)
    assert WebhookDelivery.objects.filter(job=job).count() == 1
    plain = Job.objects.get(pk=alice_api.post("/api/v1/generate.php", IMAGE, format="json").json()["job_id"])
    job_cancel(job=plain)
    assert not WebhookDelivery.objects.filter(job=plain).exists(), "no webhook_url, no delivery"


def test_a_try_signs_with_the_current_and_the_previous_secret(alice_api, catalog, settings):
    # In process, with the receiver on loopback allowed: the worker tests show the same through Celery.
    from tests.webhooks.conftest import Receiver

    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = True
    receiver = Receiver()
    try:
        old = alice_api.get("/api/v1/webhook_secret.php").json()["secret"]
        new = alice_api.post("/api/v1/webhook_secret.php").json()["secret"]
        body = {**IMAGE, "webhook_url": receiver.url}
        job = Job.objects.get(pk=alice_api.post("/api/v1/generate.php", body, format="json").json()["job_id"])
        job_cancel(job=job)
        delivery = WebhookDelivery.objects.get(job=job)
        attempt = webhook_attempt(delivery_id=delivery.pk, attempt=1)
        assert attempt.status_code == 200 and attempt.succeeded
        assert webhook_attempt(delivery_id=delivery.pk, attempt=1) is None, "claimed once"
        assert webhook_attempt(delivery_id=delivery.pk, attempt=2) is None, "delivered: nothing more"
        [(headers, raw)] = receiver.requests
    finally:
        receiver.close()
    assert Webhook(new).verify(raw, headers)["type"] == "job.canceled"
    assert Webhook(old).verify(raw, headers)["type"] == "job.canceled"
    assert len(headers["webhook-signature"].split(" ")) == 2


def test_a_timeout_is_retried(alice_api, catalog, settings):
    from tests.webhooks.conftest import Receiver

    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver = Receiver()
    receiver.delay = 2.0
    try:
        body = {**IMAGE, "webhook_url": receiver.url}
        job = Job.objects.get(pk=alice_api.post("/api/v1/generate.php", body, format="json").json()["job_id"])
        job_cancel(job=job)
        delivery = WebhookDelivery.objects.get(job=job)
        attempt = webhook_attempt(delivery_id=delivery.pk, attempt=1)
    finally:
        receiver.close()
    assert attempt.status_code is None and attempt.error == "Timed out fetching the URL."
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempts == 1
    wait = (delivery.next_attempt_at - attempt.started_at).total_seconds()
    assert settings.WEBHOOK_RETRY_SCHEDULE[0] - 1 <= wait <= settings.WEBHOOK_RETRY_SCHEDULE[0] + 2


def test_the_default_retry_schedule_is_as_documented():
    schedule = django_settings.WEBHOOK_RETRY_SCHEDULE
    assert schedule[0] <= 10, "the first retry within 10 s"
    assert all(a < b for a, b in itertools.pairwise(schedule)), "growing waits"
    assert len(schedule) + 1 >= 6 and sum(schedule) >= 3600, "at least 6 tries over at least an hour"


def test_redeliver_leaves_a_pending_delivery_alone(alice_api, catalog):
    body = {**IMAGE, "webhook_url": "https://example.com/h"}
    job = Job.objects.get(pk=alice_api.post("/api/v1/generate.php", body, format="json").json()["job_id"])
    job_cancel(job=job)
    delivery = WebhookDelivery.objects.get(job=job)
    assert webhook_redeliver(delivery=delivery) is False
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=9, next_attempt_at=None)
    assert webhook_redeliver(delivery=delivery) is True
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.max_attempts == 9 + len(django_settings.WEBHOOK_RETRY_SCHEDULE) + 1


def test_the_docs_and_the_model_page_explain_webhooks(client, catalog):
    guide = client.get("/docs/agents.php").content.decode().replace("<wbr>", "")  # identifiers wrap at _ . /
    assert 'id="webhooks"' in guide and "standardwebhooks" in guide and "webhook_deliveries.php" in guide
    page = client.get("/model-api.php", {"model": "local/procedural-image"}).content.decode()
    assert "/docs/agents.php#webhooks" in page and "/api/v1/webhook_secret.php" in page


def _canceled_delivery(client, url: str) -> WebhookDelivery:
    body = {**IMAGE, "webhook_url": url}
    job = Job.objects.get(pk=client.post("/api/v1/generate.php", body, format="json").json()["job_id"])
    job_cancel(job=job)
    return WebhookDelivery.objects.get(job=job)


@pytest.mark.parametrize(("wait", "enqueued"), [(1, 1), (600, 0)])
def test_a_long_wait_is_left_to_the_sweeper(
    alice_api, catalog, settings, django_capture_on_commit_callbacks, wait, enqueued
):
    from tests.webhooks.conftest import Receiver

    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = True
    settings.WEBHOOK_RETRY_SCHEDULE = [wait]
    receiver = Receiver()
    receiver.statuses = [500]
    try:
        delivery = _canceled_delivery(alice_api, receiver.url)
        with django_capture_on_commit_callbacks() as callbacks:
            attempt = webhook_attempt(delivery_id=delivery.pk, attempt=1)
    finally:
        receiver.close()
    assert attempt.status_code == 500
    assert len(callbacks) == enqueued  # a countdown message only for short waits
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.max_attempts == 2
    assert abs((delivery.next_attempt_at - attempt.started_at).total_seconds() - wait) < 2


def test_a_redirect_is_not_followed_and_counts_as_a_failure(alice_api, catalog, settings):
    from tests.webhooks.conftest import Receiver

    settings.FETCH_ALLOW_PRIVATE_ADDRESSES = True
    receiver = Receiver()
    receiver.statuses = [302]
    try:
        delivery = _canceled_delivery(alice_api, receiver.url)
        attempt = webhook_attempt(delivery_id=delivery.pk, attempt=1)
    finally:
        receiver.close()
    assert attempt.status_code == 302 and attempt.error == "The receiver answered HTTP 302."
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.last_status_code == 302


def _listener_that_breaks(*, job, event):
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("SELECT 1/0")  # a database error inside the listener's savepoint


def test_a_listener_that_fails_never_undoes_the_transition(alice, alice_api, catalog, monkeypatch):
    from apps.generations import services as generation_services

    monkeypatch.setattr(
        generation_services,
        "JOB_EVENT_LISTENERS",
        (f"{__name__}._listener_that_breaks", "apps.webhooks.services.webhook_job_event"),
    )
    body = {**IMAGE, "webhook_url": "https://example.com/h"}
    job = Job.objects.get(pk=alice_api.post("/api/v1/generate.php", body, format="json").json()["job_id"])
    assert job_cancel(job=job)
    job.refresh_from_db()
    assert job.status == "canceled"
    assert WebhookDelivery.objects.filter(job=job).count() == 1, "the next listener still ran"
