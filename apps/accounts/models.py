import hashlib
import ipaddress
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


# What a key may do (docs/auth.md#scopes). A browser session has them all; so has a key created without a choice.
SCOPES = ("generate", "billing", "keys")


def scopes_default() -> list[str]:
    return list(SCOPES)


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
    # Limits (docs/auth.md#key-limits). Empty means no limit. Spend is counted on the jobs of the key's lineage.
    scopes = models.JSONField(default=scopes_default, blank=True, help_text="Any of: generate, billing, keys.")
    spend_limit_day_micro = models.BigIntegerField(null=True, blank=True, help_text="Per UTC day.")
    spend_limit_month_micro = models.BigIntegerField(null=True, blank=True, help_text="Per UTC calendar month.")
    spend_limit_total_micro = models.BigIntegerField(null=True, blank=True, help_text="Over the key's life.")
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="Public model ids, or `prefix/*`; empty: every model."
    )
    allowed_ips = models.JSONField(default=list, blank=True, help_text="CIDR ranges; empty: any address.")
    rpm_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute.")
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Queued + processing jobs.")
    expires_at = models.DateTimeField(null=True, blank=True)
    # "/<root id>/…/<own id>/": the path of budget holders this key belongs to. A key made by a key extends its
    # creator's lineage, so a sub-key's spend counts against its creator's limits too; a rotated key keeps the
    # lineage of the key it replaces, so rotating never resets a budget.
    lineage = models.CharField(max_length=200, blank=True, db_index=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())

    @property
    def has_budget_limits(self) -> bool:
        """Limits that need the key's jobs counted (under a lock) at each submission."""
        return any(
            value is not None
            for value in (
                self.spend_limit_day_micro,
                self.spend_limit_month_micro,
                self.spend_limit_total_micro,
                self.concurrency_limit,
            )
        )

    @property
    def lineage_ids(self) -> list[int]:
        return [int(part) for part in self.lineage.strip("/").split("/") if part]

    def has_scope(self, scope: str) -> bool:
        return scope in (self.scopes or ())

    def model_allowed(self, public_model: str) -> bool:
        return not self.allowed_models or any(model_pattern_matches(p, public_model) for p in self.allowed_models)

    def ip_allowed(self, address: str) -> bool:
        if not self.allowed_ips:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(network, strict=False) for network in self.allowed_ips)


def model_pattern_matches(pattern: str, public_model: str) -> bool:
    """`z-image` matches itself only; `gpt-image-2/*` matches every id under `gpt-image-2/`; `*` matches all."""
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return public_model.startswith(pattern[:-1])
    return pattern == public_model
