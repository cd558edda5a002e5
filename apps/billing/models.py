from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.billing import money


class Wallet(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet")
    # A cache of the sum of this wallet's ledger entries, written in the same transaction as each entry.
    balance_micro = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(balance_micro__gte=0), name="wallet_no_overdraft")]

    def __str__(self):
        return f"{self.user} — {money.format_credits(self.balance_micro)} credits"

    def can_afford(self, amount_micro: int) -> bool:
        return self.balance_micro >= amount_micro


class LedgerEntry(models.Model):
    """Append-only: one row per movement of credits. Corrections are new `adjustment` rows."""

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        TOPUP = "topup", "Top-up"
        DEBIT = "debit", "Debit"  # a job's hold: the quoted cost, taken at submission
        REFUND = "refund", "Refund"  # a hold released (job failed) or the unused part of one
        ADJUSTMENT = "adjustment", "Adjustment"
        COMMISSION = "commission", "Commission"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    amount_micro = models.BigIntegerField(help_text="Signed: positive adds credits, negative takes them.")
    balance_after_micro = models.BigIntegerField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    reference = models.CharField(max_length=100, blank=True, help_text="The job or payment this entry is about.")
    description = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["wallet", "-created_at"])]
        verbose_name_plural = "ledger entries"

    def __str__(self):
        return f"{self.kind} {money.format_credits(self.amount_micro)} ({self.idempotency_key})"


class Hold(models.Model):
    """Credits taken for work not yet finished. Settled (kept, maybe partly) or released (returned), once."""

    class Status(models.TextChoices):
        HELD = "held", "Held"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"
        REFUNDED = "refunded", "Refunded"  # settled, then given back by an admin

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="holds")
    key = models.CharField(max_length=200, unique=True, help_text="Base of the idempotency keys of its entries.")
    amount_micro = models.BigIntegerField()
    charged_micro = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.HELD)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount_micro__gte=0), name="hold_amount_not_negative")]

    def __str__(self):
        return f"{self.key} {self.status}"
