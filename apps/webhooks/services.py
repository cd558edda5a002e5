"""Job webhooks, as Standard Webhooks define them: each event of a job becomes one delivery (one `webhook-id`),
recorded in the transaction that changed the job, then tried by Celery tasks through the SSRF-safe fetcher until
the receiver answers 2xx or the retry schedule runs out. Never sent from the web process."""

import base64
import json
import logging
import secrets
import time
from datetime import timedelta
from math import floor

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import serializers
from standardwebhooks import Webhook

from apps.generations.models import Job
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSecret
from kiwiwhale.lib import crypto, safe_fetch
from kiwiwhale.lib.tasks import task_enqueue

logger = logging.getLogger(__name__)

# A try that started this long ago without recording its outcome is presumed lost (its worker died).
ATTEMPT_LEASE_MARGIN_SECONDS = 60
# How late a try may be before the sweeper sends it again (its message was lost, or the broker was down).
SWEEP_GRACE_SECONDS = 30
# ETA tasks may fire a little early on a worker whose clock runs ahead.
CLOCK_SLACK_SECONDS = 2
# Longer waits are left to the sweeper: a countdown message held past the broker's visibility timeout (Redis:
# 1 h) is delivered again and again, and one held by a worker is lost with it.
ETA_MAX_SECONDS = 300
# How much of a receiver's answer is kept in the delivery log.
EXCERPT_BYTES = 500


def _secret_new() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def webhook_secret_get(*, user) -> WebhookSecret:
    """The account's signing secret, created on first use (two first uses at once end on one row)."""
    defaults = {"secret_encrypted": crypto.encrypt(_secret_new())}
    row, _ = WebhookSecret.objects.get_or_create(user=user, defaults=defaults)
    return row


def webhook_secret_rotate(*, user) -> WebhookSecret:
    """A new secret; the old one keeps signing beside it for WEBHOOK_SECRET_GRACE_SECONDS."""
    webhook_secret_get(user=user)
    with transaction.atomic():
        row = WebhookSecret.objects.select_for_update().get(user=user)
        row.previous_encrypted = row.secret_encrypted
        row.secret_encrypted = crypto.encrypt(_secret_new())
        row.rotated_at = timezone.now()
        row.save(update_fields=["previous_encrypted", "secret_encrypted", "rotated_at"])
    return row


class _SiteRequest:
    """Stands in for a request when a job is serialised in a worker: paths become absolute under SITE_URL."""

    def build_absolute_uri(self, location: str) -> str:
        return f"{settings.SITE_URL}{location}"


def _job_object(job_id: str) -> dict:
    from apps.generations.apis import JobApi  # the object jobs.php answers, by the very serializer it uses

    job = Job.objects.with_outputs().get(pk=job_id)
    context = {"request": _SiteRequest() if settings.SITE_URL else None}
    return dict(JobApi.OutputSerializer(job, context=context).data)


def webhook_job_event(*, job: Job, event: str) -> WebhookDelivery | None:
    """Records the event as a delivery when the job's webhook wants it, and sends its first try after commit.

    A listener of generations (job_event_notify), called inside the transaction of the transition: the delivery
    exists exactly when the transition committed, whichever process made it.
    """
    if not job.webhook_wants(event):
        return None
    with transaction.atomic():  # its own savepoint: a failure here never undoes the job's transition
        now = timezone.now()
        body = {
            "type": f"job.{event}",
            "timestamp": serializers.DateTimeField().to_representation(now),
            "data": _job_object(job.pk),
        }
        delivery, created = WebhookDelivery.objects.get_or_create(
            job_id=job.pk,
            event=f"job.{event}",
            defaults={
                "user_id": job.user_id,
                "url": job.webhook_url,
                "body": json.dumps(body, separators=(",", ":")),
                "max_attempts": len(settings.WEBHOOK_RETRY_SCHEDULE) + 1,
                "next_attempt_at": now,  # if the first message is lost, the sweeper sends it
            },
        )
    if created:
        transaction.on_commit(lambda: webhook_attempt_enqueue(delivery_id=delivery.pk, attempt=1))
    return delivery


def webhook_attempt_enqueue(*, delivery_id: str, attempt: int, delay: float = 0) -> None:
    from apps.webhooks.tasks import webhook_attempt as webhook_attempt_task

    task_enqueue(webhook_attempt_task, delivery_id, attempt, countdown=delay)  # if lost, the sweeper sends it


def webhook_attempt(*, delivery_id: str, attempt: int) -> WebhookAttempt | None:
    """Makes try number `attempt` of a delivery, once: the claim is a conditional UPDATE, so a duplicate message,
    a late one, or one for a delivery already answered with 2xx does nothing. None when there was nothing to do."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + ATTEMPT_LEASE_MARGIN_SECONDS)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=WebhookDelivery.Status.PENDING,
        attempts=attempt - 1,
        max_attempts__gte=attempt,
        next_attempt_at__lte=now + timedelta(seconds=CLOCK_SLACK_SECONDS),
    ).update(attempts=attempt, next_attempt_at=lease)
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("user").get(pk=delivery_id)
    signing = webhook_secret_get(user=delivery.user).signing_secrets(now=now)
    # Signed at each try: receivers refuse a webhook-timestamp more than 5 minutes away from their clock.
    sent_at = timezone.now()
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.pk,
        "webhook-timestamp": str(floor(sent_at.timestamp())),
        "webhook-signature": " ".join(
            Webhook(secret).sign(msg_id=delivery.pk, timestamp=sent_at, data=delivery.body) for secret in signing
        ),
    }
    status_code, error, excerpt, final = None, "", "", False
    started = time.monotonic()
    try:
        answer = safe_fetch.safe_request(
            "POST",
            delivery.url,
            content=delivery.body.encode(),
            headers={"User-Agent": "KiwiWhale-webhooks/1", **headers},
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            max_bytes=EXCERPT_BYTES,
            truncate=True,  # the rest of the answer is not ours to read
        )
    except safe_fetch.FetchRefused as exc:
        error, final = str(exc), True  # the same URL would be refused on every try
    except safe_fetch.FetchError as exc:
        error = str(exc)
    else:
        status_code, excerpt = answer.status, answer.content.decode("utf-8", "replace")
        if not 200 <= status_code < 300:
            error = f"The receiver answered HTTP {status_code}."
    return _attempt_record(
        delivery,
        attempt=attempt,
        started_at=sent_at,
        duration_ms=round((time.monotonic() - started) * 1000),
        status_code=status_code,
        error=error,
        excerpt=excerpt,
        final=final,
    )


def _attempt_record(delivery, *, attempt, started_at, duration_ms, status_code, error, excerpt, final):
    now = timezone.now()
    with transaction.atomic():
        row = WebhookAttempt.objects.create(
            delivery=delivery,
            number=attempt,
            started_at=started_at,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error[:500],
            response_excerpt=excerpt[:500],
        )
        ours = WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookDelivery.Status.PENDING, attempts=attempt)
        outcome = {"last_status_code": status_code, "last_error": error[:500]}
        if row.succeeded:
            ours.update(**outcome, status=WebhookDelivery.Status.DELIVERED, delivered_at=now, next_attempt_at=None)
        elif final or attempt >= delivery.max_attempts:
            ours.update(**outcome, status=WebhookDelivery.Status.FAILED, next_attempt_at=None)
        else:
            schedule = settings.WEBHOOK_RETRY_SCHEDULE
            delay = schedule[min(attempt, len(schedule)) - 1]
            if ours.update(**outcome, next_attempt_at=now + timedelta(seconds=delay)) and delay <= ETA_MAX_SECONDS:
                transaction.on_commit(
                    lambda: webhook_attempt_enqueue(delivery_id=delivery.pk, attempt=attempt + 1, delay=delay)
                )
    return row


def webhook_deliveries_sweep() -> int:
    """Sends again the tries whose message was lost (or whose worker died mid-try); returns how many."""
    now = timezone.now()
    due = WebhookDelivery.objects.due(before=now - timedelta(seconds=SWEEP_GRACE_SECONDS))
    rows = list(due.values_list("pk", "attempts", "max_attempts", "next_attempt_at")[:500])
    sent = 0
    for pk, attempts, max_attempts, next_attempt_at in rows:
        row = WebhookDelivery.objects.filter(
            pk=pk, status=WebhookDelivery.Status.PENDING, attempts=attempts, next_attempt_at=next_attempt_at
        )
        if attempts >= max_attempts:
            row.update(
                status=WebhookDelivery.Status.FAILED,
                next_attempt_at=None,
                last_error="The last try was interrupted before the receiver's answer was recorded.",
            )
        elif row.update(next_attempt_at=now):  # not picked again before another grace period
            webhook_attempt_enqueue(delivery_id=pk, attempt=attempts + 1)
            sent += 1
    return sent


def webhook_redeliver(*, delivery: WebhookDelivery) -> bool:
    """An admin sends a delivered or failed event again (same `webhook-id`), with a fresh round of retries.
    False when it is still pending (its tries are under way)."""
    with transaction.atomic():
        row = WebhookDelivery.objects.select_for_update().get(pk=delivery.pk)
        if row.status == WebhookDelivery.Status.PENDING:
            return False
        row.status = WebhookDelivery.Status.PENDING
        row.max_attempts = row.attempts + len(settings.WEBHOOK_RETRY_SCHEDULE) + 1
        row.next_attempt_at = timezone.now()
        row.delivered_at = None
        row.save(update_fields=["status", "max_attempts", "next_attempt_at", "delivered_at"])
        transaction.on_commit(lambda: webhook_attempt_enqueue(delivery_id=row.pk, attempt=row.attempts + 1))
    return True
