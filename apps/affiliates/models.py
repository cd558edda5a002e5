import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.billing import money

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: codes are read aloud and typed


def referral_code_new() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


class ReferralCode(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="referral_code")
    code = models.CharField(max_length=16, unique=True, default=referral_code_new)
    clicks = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return self.code


class Attribution(models.Model):
    """Who brought an account: set once at sign-up, never changed (one row per referred account)."""

    class Source(models.TextChoices):
        COOKIE = "cookie", "Referral link (browser)"
        API = "api", "agent_register referral_code"

    referred = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attribution")
    referrer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="referrals")
    code = models.CharField(max_length=16)
    source = models.CharField(max_length=8, choices=Source.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=~models.Q(referred=models.F("referrer")), name="no_self_referral")
        ]

    def __str__(self):
        return f"{self.referred} ← {self.referrer}"


class AffiliateAccount(models.Model):
    """An affiliate's commission balances: cached sums of its ledger entries, per bucket, in micro-credits.

    Separate from the spendable wallet: commission becomes credits only through a conversion.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="affiliate")
    pending_micro = models.BigIntegerField(default=0)
    available_micro = models.BigIntegerField(default=0)
    requested_micro = models.BigIntegerField(default=0)
    paid_micro = models.BigIntegerField(default=0)
    converted_micro = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    BUCKETS = ("pending", "available", "requested", "paid", "converted")

    def __str__(self):
        return f"{self.user} — available {money.format_credits(self.available_micro)}"


class CommissionEntry(models.Model):
    """Append-only movement of commission between buckets (pending → available → requested → paid/converted)."""

    class Kind(models.TextChoices):
        AWARD = "award", "Commission earned"
        MATURE = "mature", "Hold period over"
        REVERSAL = "reversal", "Payment refunded or disputed"
        CONVERSION = "conversion", "Converted to credits"
        PAYOUT_REQUEST = "payout_request", "Payout requested"
        PAYOUT_REJECTED = "payout_rejected", "Payout rejected"
        PAYOUT_PAID = "payout_paid", "Payout paid"

    account = models.ForeignKey(AffiliateAccount, on_delete=models.PROTECT, related_name="entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    bucket = models.CharField(max_length=10)
    amount_micro = models.BigIntegerField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    reference = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "commission entries"

    def __str__(self):
        return f"{self.kind} {self.bucket} {money.format_credits(self.amount_micro)}"


class Commission(models.Model):
    """One commission, earned on one payment of a referred account."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        AVAILABLE = "available", "Available"
        REVERSED = "reversed", "Reversed"

    affiliate = models.ForeignKey(AffiliateAccount, on_delete=models.PROTECT, related_name="commissions")
    referred = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    payment_reference = models.CharField(max_length=100, unique=True, help_text="The payment it was earned on.")
    base_micro = models.BigIntegerField(help_text="Net credits the payment bought.")
    rate_percent = models.DecimalField(max_digits=5, decimal_places=2)
    amount_micro = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    available_at = models.DateTimeField(help_text="When the hold period ends.")
    created_at = models.DateTimeField(default=timezone.now)
    reversed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "available_at"])]

    def __str__(self):
        return f"{self.payment_reference}: {money.format_credits(self.amount_micro)} ({self.status})"


class Payout(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        PAID = "paid", "Paid"

    affiliate = models.ForeignKey(AffiliateAccount, on_delete=models.PROTECT, related_name="payouts")
    amount_micro = models.BigIntegerField()
    method = models.CharField(max_length=300, help_text="Where to pay, as the affiliate gave it.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Payout {self.pk} {money.format_credits(self.amount_micro)} ({self.status})"


class PayoutEvent(models.Model):
    """The audit trail of a payout: who did what, when."""

    payout = models.ForeignKey(Payout, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=20)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"{self.action} by {self.actor} at {self.created_at:%Y-%m-%d %H:%M}"
