import hashlib
import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

API_KEY_PREFIX = "kw_"
API_KEY_VISIBLE_CHARS = 8  # after "kw_": enough to tell keys apart in a list, useless to an attacker


class User(AbstractUser):
    class AccountType(models.TextChoices):
        HUMAN = "human", "Human"
        AGENT = "agent", "Agent"

    account_type = models.CharField(max_length=8, choices=AccountType.choices, default=AccountType.HUMAN)
    display_name = models.CharField(max_length=150, blank=True)

    @property
    def is_agent(self) -> bool:
        return self.account_type == self.AccountType.AGENT


def api_key_hash(raw_key: str) -> str:
    # Keys carry 256 bits of randomness, so a plain SHA-256 is as safe as a slow hash and costs nothing per request.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_generate() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, default="default")
    prefix = models.CharField(max_length=16, help_text="The first characters of the key, shown to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
