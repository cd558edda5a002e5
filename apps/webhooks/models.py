import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from kiwiwhale.lib import crypto


def delivery_id_new() -> str:
    return "msg_" + secrets.token_urlsafe(18)


class WebhookSecret(models.Model):
    """The account's signing secret (`whsec_…`), stored encrypted. After a rotation the previous one keeps signing
    beside the new one for WEBHOOK_SECRET_GRACE_SECONDS, so a receiver can switch without losing deliveries."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_secret")
    secret_encrypted = models.TextField(editable=False)
    previous_encrypted = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"webhook secret of {self.user}"

    @property
    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    def signing_secrets(self, *, now) -> list[str]:
        """The current secret, and the previous one while its grace period lasts."""
        current = [self.secret]
        grace = settings.WEBHOOK_SECRET_GRACE_SECONDS
        if self.previous_encrypted and self.rotated_at and (now - self.rotated_at).total_seconds() < grace:
            return [*current, crypto.decrypt(self.previous_encrypted)]
        return current


class WebhookDeliveryQuerySet(models.QuerySet):
    def for_user(self, user):
        return self.filter(user=user)

    def due(self, *, before):
        """Pending deliveries whose next attempt should have started by `before` (their message may be lost)."""
        return self.filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=before)


class WebhookDelivery(models.Model):
    """One event of one job for its webhook: the message (its id is `webhook-id`, the same on every try) and how
    its delivery is going. Each try is a WebhookAttempt."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    id = models.CharField(primary_key=True, max_length=40, default=delivery_id_new, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_deliveries")
    job = models.ForeignKey("generations.Job", on_delete=models.CASCADE, related_name="webhook_deliveries")
    event = models.CharField(max_length=20, help_text="job.started, job.completed, job.failed or job.canceled.")
    url = models.URLField(max_length=2000)
    body = models.TextField(help_text="The JSON body, byte for byte as sent on every try.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Tries started so far.")
    max_attempts = models.PositiveIntegerField(help_text="Tries allowed before it fails for good.")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next try starts; while one runs, when it is presumed lost."
    )
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["job", "event"], name="webhook_delivery_once_per_event")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due")]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.id} {self.event} of {self.job_id}"


class WebhookAttempt(models.Model):
    """One try of a delivery: what the receiver answered, or why there was no answer."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_once")]

    def __str__(self):
        return f"{self.delivery_id} try {self.number}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
