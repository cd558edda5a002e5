from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.billing import money


class Wallet(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet")
    # A cache of the sum of this wallet's ledger entries, written in the same transaction as each entry. Negative
    # only after a clawback (a refunded or lost-disputed payment whose credits were spent): see LedgerEntry.Meta.
    balance_micro = models.BigIntegerField(default=0)
    # Read by the ledger writer with the locked row, so a debit knows at no extra query whether to look further:
    # the auto top-up trigger (null: auto top-up off) and the low-balance notice threshold (null: none).
    autotopup_trigger_micro = models.BigIntegerField(null=True, blank=True)
    low_balance_threshold_micro = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

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
        REDEMPTION = "redemption", "Redemption code"
        CLAWBACK = "clawback", "Clawback"  # a refunded or lost-disputed payment's credits taken back

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
        constraints = [
            # The no-overdraft rule, per movement: an entry that takes credits leaves the balance at zero or above,
            # unless it is a clawback. So a wallet is negative only because a clawback made it so; entries that add
            # credits may leave it negative (paying the debt back). The writer enforces the same rule first.
            models.CheckConstraint(
                condition=Q(amount_micro__gte=0) | Q(balance_after_micro__gte=0) | Q(kind="clawback"),
                name="ledger_debit_no_overdraft",
            ),
        ]

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


class BillingProfile(models.Model):
    """One per account that touches billing: its Stripe customer, auto top-up and low-balance notice settings."""

    class Mode(models.TextChoices):
        FIXED = "fixed", "Fixed: add a set amount"
        BUFFER = "buffer", "Buffer: refill to a target balance"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_profile")
    # One Stripe Customer per account, ever: set once by a conditional update.
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    autotopup_enabled = models.BooleanField(default=False)
    autotopup_mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.FIXED)
    autotopup_trigger_micro = models.BigIntegerField(default=0)
    autotopup_amount_micro = models.BigIntegerField(default=0, help_text="Fixed mode: credits added each time.")
    autotopup_target_micro = models.BigIntegerField(default=0, help_text="Buffer mode: the balance to refill to.")
    autotopup_daily_cap_micro = models.BigIntegerField(null=True, blank=True, help_text="Empty: the instance cap.")
    autotopup_monthly_cap_micro = models.BigIntegerField(null=True, blank=True, help_text="Empty: the instance cap.")
    autotopup_declines = models.PositiveIntegerField(default=0, help_text="Declines in a row.")
    autotopup_disabled_reason = models.CharField(max_length=300, blank=True)
    low_balance_webhook_url = models.URLField(max_length=2000, blank=True)
    # Set when the notice went out; cleared when money comes in above the threshold (one notice per crossing).
    low_balance_notice_sent = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"billing of {self.user}"


class PaymentMethod(models.Model):
    """A saved card. Only what a person needs to recognise it; the card itself stays at Stripe."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payment_methods")
    stripe_payment_method_id = models.CharField(max_length=255, unique=True)
    brand = models.CharField(max_length=32, blank=True)
    last4 = models.CharField(max_length=4, blank=True)
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    # Stripe's card fingerprint (a hash, not card data): the affiliate program refuses self-referral loops by it.
    fingerprint = models.CharField(max_length=64, blank=True)
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-is_default", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=Q(is_default=True), name="one_default_card_per_user")
        ]

    def __str__(self):
        return f"{self.brand} •••• {self.last4}"


class Payment(models.Model):
    """Money in through Stripe: one row per Checkout, top-up or auto top-up attempt; the receipt of a success."""

    class Kind(models.TextChoices):
        CHECKOUT = "checkout", "Checkout"
        TOPUP = "topup", "Top-up"
        AUTOTOPUP = "autotopup", "Auto top-up"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # created; Stripe has not answered yet
        REQUIRES_ACTION = "requires_action", "Needs the card holder"
        PROCESSING = "processing", "Processing"
        SUCCEEDED = "succeeded", "Succeeded"  # credited, exactly once
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    IN_FLIGHT = (Status.PENDING, Status.REQUIRES_ACTION, Status.PROCESSING)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    credits_micro = models.BigIntegerField(help_text="Credits the wallet receives.")
    price_cents = models.BigIntegerField(help_text="The price of the credits.")
    fee_cents = models.BigIntegerField(help_text="The card fee passed on (gross-up).")
    amount_cents = models.BigIntegerField(help_text="What the card is charged: price + fee.")
    currency = models.CharField(max_length=3, default="usd")
    stripe_payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    # Stored with the row before Stripe hears of the payment, so every retry (the reconciler's too) sends the
    # same request: the same card under the same idempotency key, which Stripe answers with the first charge.
    stripe_payment_method_id = models.CharField(max_length=255, blank=True, help_text="The card charged.")
    stripe_idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    card_brand = models.CharField(max_length=32, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    refunded_cents = models.BigIntegerField(default=0)
    dispute_status = models.CharField(max_length=32, blank=True)
    dispute_lost_cents = models.BigIntegerField(default=0)
    clawed_back_micro = models.BigIntegerField(default=0, help_text="Credits taken back by refunds and disputes.")
    review_reason = models.CharField(
        max_length=500, blank=True, help_text="Set when Stripe reported something that does not match: not credited."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"]), models.Index(fields=["status", "created_at"])]
        constraints = [
            # Never two auto top-up charges racing for one wallet: the claim of the second one fails here.
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(kind="autotopup", status__in=["pending", "requires_action", "processing"]),
                name="one_autotopup_in_flight_per_user",
            ),
            models.CheckConstraint(
                condition=Q(credits_micro__gt=0, amount_cents__gt=0), name="payment_amounts_positive"
            ),
        ]

    def __str__(self):
        return f"payment {self.pk} {self.kind} {self.status}"

    @property
    def ledger_key(self) -> str:
        # Deterministic and shared by every path that can credit this payment (the synchronous answer, the
        # webhook, the return from Checkout, the reconciler), so they meet on one ledger entry.
        if self.stripe_payment_intent_id:
            return f"stripe:pi:{self.stripe_payment_intent_id}"
        return f"stripe:cs:{self.stripe_checkout_session_id}"

    @property
    def reference(self) -> str:
        return self.stripe_payment_intent_id or self.stripe_checkout_session_id or f"payment:{self.pk}"


class StripeEvent(models.Model):
    """Each webhook event, stored once by its id, with how its handling went (for support)."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored (type not handled)"
        FAILED = "failed", "Failed"
        REFUSED = "refused", "Refused (does not match what was paid)"

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECEIVED)
    error = models.TextField(blank=True)
    payload = models.JSONField()
    attempts = models.PositiveIntegerField(default=0)
    stripe_created_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"{self.event_id} {self.type} {self.status}"


class BillingEvent(models.Model):
    """What billing did on its own for an account (auto top-up charged, declined, switched off…), for the
    account to see on /billing.php and through the API."""

    class Kind(models.TextChoices):
        AUTOTOPUP_SUCCEEDED = "autotopup_succeeded", "Auto top-up charged"
        AUTOTOPUP_DECLINED = "autotopup_declined", "Auto top-up declined"
        AUTOTOPUP_REQUIRES_ACTION = "autotopup_requires_action", "Auto top-up needs the card holder"
        AUTOTOPUP_DISABLED = "autotopup_disabled", "Auto top-up switched off"
        AUTOTOPUP_CAP_REACHED = "autotopup_cap_reached", "Auto top-up cap reached"
        AUTOTOPUP_ERROR = "autotopup_error", "Auto top-up could not reach Stripe"
        LOW_BALANCE = "low_balance", "Low balance notice"
        CLAWBACK = "clawback", "Credits taken back"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="billing_events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message = models.CharField(max_length=500)
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self):
        return f"{self.kind}: {self.message}"


class RedemptionBatch(models.Model):
    """Codes an admin made together: each worth `credits_micro`, redeemable `max_uses` times, until `expires_at`."""

    name = models.CharField(max_length=200)
    credits_micro = models.BigIntegerField()
    max_uses = models.PositiveIntegerField(default=1, help_text="Accounts that may redeem each code.")
    expires_at = models.DateTimeField(null=True, blank=True)
    disabled = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "redemption batches"
        constraints = [
            models.CheckConstraint(condition=Q(credits_micro__gt=0), name="redemption_credits_positive"),
            models.CheckConstraint(condition=Q(max_uses__gte=1), name="redemption_max_uses_positive"),
        ]

    def __str__(self):
        return f"{self.name} ({money.format_credits(self.credits_micro)} credits)"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class RedemptionCode(models.Model):
    """Only the code's hash is kept; the code itself is shown once, when the batch is made."""

    batch = models.ForeignKey(RedemptionBatch, on_delete=models.CASCADE, related_name="codes")
    code_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=8, help_text="The last characters, to tell codes apart.")
    uses = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"…{self.hint} ({self.batch.name})"


class Redemption(models.Model):
    code = models.ForeignKey(RedemptionCode, on_delete=models.PROTECT, related_name="redemptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="redemptions")
    entry = models.OneToOneField(LedgerEntry, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["code", "user"], name="one_redemption_per_code_and_user")]

    def __str__(self):
        return f"{self.user} redeemed {self.code}"
