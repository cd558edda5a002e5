import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


def _holder_new() -> str:
    return uuid.uuid4().hex


def lease_end():
    return timezone.now() + timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)


class IdempotencyRecord(models.Model):
    """The first response to an `Idempotency-Key`, replayed for the same key and body for 24 hours."""

    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    scope = models.CharField(max_length=60, help_text="The operation, so one key can't replay another endpoint.")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # While in progress: the claim that holds the key, and until when (renewed by the running request).
    holder = models.CharField(max_length=32, default=_holder_new)
    lease_until = models.DateTimeField(default=lease_end)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "scope", "key"], name="idempotency_key_once")]

    def __str__(self):
        return f"{self.scope}:{self.key}"
