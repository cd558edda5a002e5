"""Every movement of credits goes through `_ledger_post`. grep `credits_` / `hold_` to see them all."""

import contextlib
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction
from django.db.models import F, Q, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.billing import money
from apps.billing import stripe_gateway as gateway
from apps.billing.models import (
    BillingEvent,
    BillingProfile,
    Hold,
    LedgerEntry,
    Payment,
    PaymentMethod,
    Redemption,
    RedemptionBatch,
    RedemptionCode,
    StripeEvent,
    Wallet,
)
from kiwiwhale.lib.ratelimit import rate_limit_hit
from kiwiwhale.lib.safe_fetch import FetchError, safe_request
from kiwiwhale.lib.tasks import task_enqueue

logger = logging.getLogger(__name__)

# Kinds of entry that bring money in: they re-arm the low-balance notice when they lift the balance above it.
MONEY_IN_KINDS = {
    LedgerEntry.Kind.GRANT,
    LedgerEntry.Kind.TOPUP,
    LedgerEntry.Kind.ADJUSTMENT,
    LedgerEntry.Kind.COMMISSION,
    LedgerEntry.Kind.REDEMPTION,
}


class InsufficientCredits(Exception):
    def __init__(self, *, required_micro: int, balance_micro: int):
        self.required_micro = required_micro
        self.balance_micro = balance_micro
        super().__init__(
            f"This needs {money.format_credits(required_micro)} credits; "
            f"the balance is {money.format_credits(balance_micro)}."
        )


class WalletNegative(InsufficientCredits):
    """The wallet owes credits (a refunded or disputed payment was taken back): nothing new until it is paid."""

    def __init__(self, *, balance_micro: int):
        super().__init__(required_micro=0, balance_micro=balance_micro)
        self.args = (
            f"The balance is negative ({money.format_credits(balance_micro)} credits) after a refund or dispute; "
            "top up to bring it back to zero or more before starting new jobs.",
        )


def wallet_get(*, user) -> Wallet:
    wallet, _ = Wallet.objects.get_or_create(user=user)
    return wallet


def _ledger_post(
    *,
    user=None,
    wallet_id: int | None = None,
    amount_micro: int,
    kind: str,
    idempotency_key: str,
    reference: str = "",
    description: str = "",
    created_by=None,
    allow_negative: bool = False,
) -> LedgerEntry:
    """The one writer of ledger entries. Runs twice with one key → one entry (the first is returned).

    Never takes a balance below zero, except with `allow_negative`, which only `credits_claw_back` passes (a
    refunded or lost-disputed payment takes its credits back even when they were spent). Adding credits is
    always allowed, also to a negative wallet (it pays the debt back).

    No savepoint of its own (two queries less on the generate path); so that a refusal does not poison the
    caller's transaction, InsufficientCredits is raised only after the block has closed, having written nothing.
    """
    with transaction.atomic(savepoint=False):
        if wallet_id is not None:
            wallet = Wallet.objects.select_for_update().get(pk=wallet_id)
        else:
            wallet = Wallet.objects.select_for_update().filter(user=user).first() or _wallet_create_locked(user)
        # Checked under the wallet lock, so two posts with one key cannot both pass; the unique index backs it.
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        new_balance = wallet.balance_micro + amount_micro
        if new_balance >= 0 or amount_micro >= 0 or allow_negative:
            Wallet.objects.filter(pk=wallet.pk).update(balance_micro=new_balance, updated_at=timezone.now())
            threshold = wallet.low_balance_threshold_micro
            if amount_micro > 0 and kind in MONEY_IN_KINDS and threshold is not None and new_balance >= threshold:
                # Money came in above the low-balance threshold: the next crossing below it sends a notice again.
                BillingProfile.objects.filter(user_id=wallet.user_id, low_balance_notice_sent=True).update(
                    low_balance_notice_sent=False
                )
            return LedgerEntry.objects.create(
                wallet=wallet,
                kind=kind,
                amount_micro=amount_micro,
                balance_after_micro=new_balance,
                idempotency_key=idempotency_key,
                reference=reference[:100],
                description=description[:300],
                created_by=created_by,
            )
    raise InsufficientCredits(required_micro=-amount_micro, balance_micro=wallet.balance_micro)


def _wallet_create_locked(user) -> Wallet:
    Wallet.objects.get_or_create(user=user)
    return Wallet.objects.select_for_update().get(user=user)


def credits_grant(*, user, amount_micro: int, reason: str, idempotency_key: str, created_by=None) -> LedgerEntry:
    if amount_micro <= 0:
        raise ValueError("A grant adds credits; use credits_adjust to take them.")
    return _ledger_post(
        user=user,
        amount_micro=amount_micro,
        kind=LedgerEntry.Kind.GRANT,
        idempotency_key=idempotency_key,
        description=reason,
        created_by=created_by,
    )


def credits_adjust(*, user, amount_micro: int, reason: str, idempotency_key: str, created_by=None) -> LedgerEntry:
    """A manual correction by an admin, either sign; never below zero."""
    if amount_micro == 0:
        raise ValueError("An adjustment of zero changes nothing.")
    return _ledger_post(
        user=user,
        amount_micro=amount_micro,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        idempotency_key=idempotency_key,
        description=reason,
        created_by=created_by,
    )


def credits_from_commission(*, user, amount_micro: int, idempotency_key: str, reference: str = "") -> LedgerEntry:
    """Affiliate commission converted into spendable credits (the affiliates app debits its own ledger)."""
    if amount_micro <= 0:
        raise ValueError("A conversion adds credits.")
    return _ledger_post(
        user=user,
        amount_micro=amount_micro,
        kind=LedgerEntry.Kind.COMMISSION,
        idempotency_key=idempotency_key,
        reference=reference,
        description="Affiliate commission converted to credits",
    )


def hold_place(*, user, amount_micro: int, key: str, reference: str = "", description: str = "") -> Hold:
    """Takes `amount_micro` now (a debit entry); raises InsufficientCredits and takes nothing if it can't.

    Runs inside the caller's transaction, with the row the hold pays for, so both exist or neither.
    """
    if amount_micro < 0:
        raise ValueError("A hold cannot be negative.")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("hold_place must run inside the transaction that creates what it pays for.")
    if amount_micro:
        entry = _ledger_post(
            user=user,
            amount_micro=-amount_micro,
            kind=LedgerEntry.Kind.DEBIT,
            idempotency_key=f"{key}:debit",
            reference=reference,
            description=description,
        )
        wallet_id = entry.wallet_id
        _after_debit(entry)
    else:
        wallet = wallet_get(user=user)
        if wallet.balance_micro < 0:
            # A clawback left a debt: nothing new starts, not even a free job, until the balance is back at zero.
            raise WalletNegative(balance_micro=wallet.balance_micro)
        wallet_id = wallet.pk
    return Hold.objects.create(key=key, wallet_id=wallet_id, amount_micro=amount_micro)


def _after_debit(entry: LedgerEntry) -> None:
    """After a hold commits: auto top-up and the low-balance notice, each looked at by a task, never inline.

    `entry.wallet` is the row the writer locked, so this costs no query; nothing is enqueued unless the
    wallet has auto top-up or a threshold and the balance is below it.
    """
    wallet = entry.wallet
    after = entry.balance_after_micro
    trigger = wallet.autotopup_trigger_micro
    if trigger is not None and after < trigger:
        transaction.on_commit(lambda: _enqueue("autotopup_run", wallet.pk))
    threshold = wallet.low_balance_threshold_micro
    if threshold is not None and after - entry.amount_micro >= threshold > after:
        transaction.on_commit(lambda: _enqueue("low_balance_notify", wallet.pk))


def _enqueue(task_name: str, wallet_id: int) -> None:
    from apps.billing import tasks

    # If the broker is down, the next debit (or the reconciler, for auto top-up) looks again.
    task_enqueue(getattr(tasks, task_name), wallet_id)


def hold_settle(*, hold: Hold, charged_micro: int | None = None, reference: str = "") -> bool:
    """Keeps the hold as the charge; a smaller actual charge returns the difference. True if this call settled it."""
    charged = hold.amount_micro if charged_micro is None else max(0, min(charged_micro, hold.amount_micro))
    with transaction.atomic():
        if not _hold_transition(hold, Hold.Status.HELD, Hold.Status.SETTLED, charged_micro=charged):
            return False
        unused = hold.amount_micro - charged
        if unused:
            _ledger_post(
                wallet_id=hold.wallet_id,
                amount_micro=unused,
                kind=LedgerEntry.Kind.REFUND,
                idempotency_key=f"{hold.key}:unused",
                reference=reference,
                description="Unused part of the hold returned",
            )
    return True


def hold_release(*, hold: Hold, reason: str, reference: str = "") -> bool:
    """Returns the whole hold (failure, timeout, cancel). True if this call released it."""
    with transaction.atomic():
        if not _hold_transition(hold, Hold.Status.HELD, Hold.Status.RELEASED, charged_micro=0):
            return False
        if hold.amount_micro:
            _ledger_post(
                wallet_id=hold.wallet_id,
                amount_micro=hold.amount_micro,
                kind=LedgerEntry.Kind.REFUND,
                idempotency_key=f"{hold.key}:release",
                reference=reference,
                description=reason,
            )
    return True


def hold_refund(*, hold: Hold, reason: str, created_by=None, reference: str = "") -> bool:
    """An admin gives back what a settled hold charged. True if this call refunded it."""
    with transaction.atomic():
        if not _hold_transition(hold, Hold.Status.SETTLED, Hold.Status.REFUNDED):
            return False
        hold.refresh_from_db(fields=["charged_micro"])
        if hold.charged_micro:
            _ledger_post(
                wallet_id=hold.wallet_id,
                amount_micro=hold.charged_micro,
                kind=LedgerEntry.Kind.REFUND,
                idempotency_key=f"{hold.key}:refund",
                reference=reference,
                description=reason,
                created_by=created_by,
            )
    return True


def _hold_transition(hold: Hold, source: str, target: str, **fields) -> bool:
    # A conditional UPDATE: of two concurrent callers exactly one sees a row change.
    now = timezone.now()
    changed = Hold.objects.filter(pk=hold.pk, status=source).update(status=target, resolved_at=now, **fields)
    if changed:
        hold.status = target
        hold.resolved_at = now
        for name, value in fields.items():
            setattr(hold, name, value)
    return bool(changed)


def credits_claw_back(
    *, wallet_id: int, amount_micro: int, idempotency_key: str, reference: str = "", description: str = ""
) -> LedgerEntry:
    """Takes back the credits of a refunded or lost-disputed payment, even into a negative balance (the only
    path that may: a negative wallet then blocks new jobs until it is topped up)."""
    if amount_micro <= 0:
        raise ValueError("A clawback takes a positive amount.")
    return _ledger_post(
        wallet_id=wallet_id,
        amount_micro=-amount_micro,
        kind=LedgerEntry.Kind.CLAWBACK,
        idempotency_key=idempotency_key,
        reference=reference,
        description=description,
        allow_negative=True,
    )


# =============================================================================================================
# Stripe: customers, cards, payments, auto top-up, webhooks. Calls to Stripe (stripe_gateway) are made outside
# any transaction that holds a lock; what they return is applied by functions that lock, re-check and return
# early, so the synchronous answer, the webhook, a page's return and the reconciler can all run, in any order.
# =============================================================================================================


class BillingError(Exception):
    """A billing request that cannot be done as asked; `code` is the API's error code."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, field: str = ""):
        super().__init__(message)
        self.field = field


class InvalidBillingRequest(BillingError):
    pass


class PaymentMethodRequired(BillingError):
    status = 402
    code = "payment_method_required"


class BillingNotFound(BillingError):
    status = 404
    code = "not_found"


class PaymentFailed(BillingError):
    """The charge was declined: nothing was added."""

    status = 402
    code = "payment_failed"

    def __init__(self, message: str, *, payment: Payment | None = None, decline_code: str = ""):
        super().__init__(message)
        self.payment = payment
        self.decline_code = decline_code


class AuthenticationRequired(BillingError):
    """The bank wants the card holder: credits arrive once they complete it at `payment.action_path`."""

    status = 402
    code = "authentication_required"

    def __init__(self, message: str, *, payment: Payment, action_path: str):
        super().__init__(message)
        self.payment = payment
        self.action_path = action_path


class RedemptionRefused(BillingError):
    def __init__(self, message: str, *, code: str, status: int = 400):
        super().__init__(message, field="code")
        self.code = code
        self.status = status


class RateLimited(Exception):
    def __init__(self, wait_seconds: int):
        super().__init__(f"Too many attempts; retry in {wait_seconds} s.")
        self.wait_seconds = wait_seconds


def _require_stripe() -> None:
    if not gateway.enabled():
        raise gateway.BillingDisabled()


def billing_profile_get(*, user) -> BillingProfile:
    profile, _ = BillingProfile.objects.get_or_create(user=user)
    return profile


def topup_amount_check(credits_micro: int, *, field: str = "credits") -> None:
    low, high = money.setting_credits("TOPUP_MIN_CREDITS"), money.setting_credits("TOPUP_MAX_CREDITS")
    if not low <= credits_micro <= high:
        raise InvalidBillingRequest(
            f"A top-up is {money.format_credits(low)} to {money.format_credits(high)} credits.", field=field
        )


# --- Links sent to a card holder (signed, expiring; no login: agents have none) ------------------------------

_SETUP_SALT = "billing.setup-link"
_ACTION_SALT = "billing.action-link"


def setup_link_token(*, user_id: int, setup_intent_id: str) -> str:
    return signing.dumps({"u": user_id, "si": setup_intent_id}, salt=_SETUP_SALT, compress=True)


def setup_link_read(token: str) -> tuple[int, str]:
    data = _link_read(token, _SETUP_SALT)
    return int(data["u"]), str(data["si"])


def action_link_token(*, payment_id: int) -> str:
    return signing.dumps({"p": payment_id}, salt=_ACTION_SALT, compress=True)


def action_link_read(token: str) -> Payment:
    data = _link_read(token, _ACTION_SALT)
    payment = Payment.objects.select_related("user").filter(pk=data["p"]).first()
    if payment is None:
        raise BillingNotFound("This link is not valid.")
    return payment


def _link_read(token: str, salt: str) -> dict:
    try:
        return signing.loads(token, salt=salt, max_age=settings.BILLING_LINK_MAX_AGE_SECONDS)
    except signing.SignatureExpired as exc:
        raise BillingNotFound("This link has expired; ask for a new one.") from exc
    except signing.BadSignature as exc:
        raise BillingNotFound("This link is not valid.") from exc


def action_path(payment: Payment) -> str:
    return reverse("billing:action", args=[action_link_token(payment_id=payment.pk)])


# --- Customer and cards ------------------------------------------------------------------------------------


def customer_ensure(*, user) -> str:
    """The account's Stripe Customer id, created the first time (one per account, ever)."""
    _require_stripe()
    profile = billing_profile_get(user=user)
    if profile.stripe_customer_id:
        return profile.stripe_customer_id
    # The idempotency key makes two racing first calls get one Customer from Stripe; the conditional update
    # keeps the first id stored even where a server ignores idempotency keys.
    customer = gateway.customer_create(
        email=user.email,
        name=getattr(user, "display_name", "") or user.username,
        user_id=user.pk,
        idempotency_key=f"customer:{user.pk}:{int(user.date_joined.timestamp())}",
    )
    BillingProfile.objects.filter(pk=profile.pk, stripe_customer_id__isnull=True).update(
        stripe_customer_id=customer["id"]
    )
    profile.refresh_from_db(fields=["stripe_customer_id"])
    return profile.stripe_customer_id


@dataclass(frozen=True)
class SetupStarted:
    setup_intent_id: str
    client_secret: str
    publishable_key: str
    setup_path: str


def payment_setup_start(*, user) -> SetupStarted:
    """A SetupIntent for off-session charges, and the page where the card holder enters the card."""
    customer_id = customer_ensure(user=user)
    intent = gateway.setup_intent_create(customer_id=customer_id, user_id=user.pk)
    token = setup_link_token(user_id=user.pk, setup_intent_id=intent["id"])
    return SetupStarted(
        setup_intent_id=intent["id"],
        client_secret=intent["client_secret"],
        publishable_key=settings.STRIPE_PUBLISHABLE_KEY,
        setup_path=reverse("billing:setup", args=[token]),
    )


def payment_method_confirm(*, user, setup_intent_id: str = "", payment_method_id: str = "") -> PaymentMethod:
    """Checks the card with Stripe, attaches it to the account's Customer, makes it the default and stores
    what identifies it (brand, last 4, expiry). Confirming the same card again changes nothing."""
    _require_stripe()
    customer_id = customer_ensure(user=user)
    if setup_intent_id:
        intent = _stripe_get(gateway.setup_intent_retrieve, setup_intent_id, "setup intent")
        if intent.get("customer") != customer_id:
            raise BillingNotFound(f"There is no setup intent {setup_intent_id!r} on this account.")
        status = intent.get("status")
        if status == "requires_action":
            raise InvalidBillingRequest(
                "The card holder has not finished the bank's check yet; open the setup_url.", field="setup_intent_id"
            )
        if status != "succeeded" or not intent.get("payment_method"):
            raise InvalidBillingRequest(
                f"The setup intent is {status}: no card was saved yet. Enter one at the setup_url first.",
                field="setup_intent_id",
            )
        payment_method_id = stripe_ref_id(intent["payment_method"])
    if not payment_method_id:
        raise InvalidBillingRequest("Give setup_intent_id or payment_method_id.", field="setup_intent_id")
    method = _stripe_get(gateway.payment_method_retrieve, payment_method_id, "payment method")
    owner = stripe_ref_id(method.get("customer"))
    if owner and owner != customer_id:
        raise BillingNotFound(f"There is no payment method {payment_method_id!r} on this account.")
    if method.get("type") != "card":
        raise InvalidBillingRequest("Only cards can be saved.", field="payment_method_id")
    if owner != customer_id:
        # Real Stripe attaches the card when a SetupIntent succeeds; localstripe does not. Either way it is ours.
        try:
            method = gateway.payment_method_attach(payment_method_id=payment_method_id, customer_id=customer_id)
        except gateway.CardDeclined as exc:
            raise PaymentFailed(str(exc), decline_code=exc.code) from exc
    gateway.customer_default_payment_method_set(customer_id=customer_id, payment_method_id=payment_method_id)
    card = method.get("card") or {}
    with transaction.atomic():
        PaymentMethod.objects.filter(user=user, is_default=True).exclude(
            stripe_payment_method_id=payment_method_id
        ).update(is_default=False)
        saved, _ = PaymentMethod.objects.update_or_create(
            stripe_payment_method_id=payment_method_id,
            defaults={
                "user": user,
                "brand": str(card.get("brand") or "")[:32],
                "last4": str(card.get("last4") or "")[:4],
                "exp_month": card.get("exp_month"),
                "exp_year": card.get("exp_year"),
                "fingerprint": str(card.get("fingerprint") or "")[:64],
                "is_default": True,
            },
        )
    return saved


def payment_method_remove(*, user, payment_method: PaymentMethod) -> None:
    """Detaches the card at Stripe and forgets it; the newest other card becomes the default. Removing the last
    card switches auto top-up off (it would have nothing to charge)."""
    if payment_method.user_id != user.pk:
        raise BillingNotFound("No such card.")
    if gateway.enabled():
        try:
            gateway.payment_method_detach(payment_method.stripe_payment_method_id)
        except gateway.NotFound:
            pass  # already gone at Stripe
        except gateway.GatewayError as exc:
            if "not attached" not in str(exc).lower():
                raise
    with transaction.atomic():
        PaymentMethod.objects.filter(pk=payment_method.pk).delete()
        successor = None
        if payment_method.is_default:
            successor = PaymentMethod.objects.filter(user=user).order_by("-created_at").first()
            if successor is not None:
                PaymentMethod.objects.filter(pk=successor.pk).update(is_default=True)
        if not PaymentMethod.objects.filter(user=user).exists():
            _autotopup_switch_off(user=user, reason="The last saved card was removed.")
    if successor is not None and gateway.enabled():
        profile = billing_profile_get(user=user)
        if profile.stripe_customer_id:
            gateway.customer_default_payment_method_set(
                customer_id=profile.stripe_customer_id, payment_method_id=successor.stripe_payment_method_id
            )


def _default_card(user) -> PaymentMethod:
    card = PaymentMethod.objects.filter(user=user, is_default=True).first()
    if card is None:
        raise PaymentMethodRequired(
            "No saved card: save one with POST /api/v1/agent_setup_payment.php (or on /billing.php) first."
        )
    return card


def _stripe_get(function, object_id: str, what: str) -> dict:
    try:
        return function(object_id)
    except gateway.NotFound as exc:
        raise BillingNotFound(f"There is no {what} {object_id!r}.") from exc


def stripe_ref_id(value) -> str:
    """A Stripe reference that may come as an id or as the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


# --- Payments: one function applies what Stripe says about a PaymentIntent, whoever brings it ----------------


def _payment_metadata(*, user, kind: str, quote: money.TopupQuote, payment_id: int | None = None) -> dict:
    metadata = {
        "kiwiwhale": "1",
        "user_id": user.pk,
        "kind": kind,
        "credits_micro": quote.credits_micro,
        "price_cents": quote.price_cents,
        "fee_cents": quote.fee_cents,
    }
    if payment_id is not None:
        metadata["payment_id"] = payment_id
    return metadata


def topup_charge(*, user, credits_micro: int, request_key: str = "") -> Payment:
    """Charges the default card off-session for `credits_micro` plus the fee; the wallet receives exactly
    `credits_micro`. Raises PaymentFailed (nothing added) or AuthenticationRequired (added when the holder
    finishes). `request_key` (the request's Idempotency-Key) makes a retry of the same request one charge."""
    _require_stripe()
    topup_amount_check(credits_micro)
    card = _default_card(user)
    customer_id = customer_ensure(user=user)
    quote = money.topup_quote(credits_micro)
    if request_key:
        digest = hashlib.sha256(request_key.encode()).hexdigest()[:32]
        stripe_key = f"topup:{user.pk}:{digest}:{card.stripe_payment_method_id}"
    else:
        stripe_key = f"topup:{user.pk}:{uuid.uuid4().hex}"
    try:
        intent = gateway.payment_intent_create_off_session(
            customer_id=customer_id,
            payment_method_id=card.stripe_payment_method_id,
            amount_cents=quote.charge_cents,
            currency=quote.currency,
            metadata=_payment_metadata(user=user, kind=Payment.Kind.TOPUP, quote=quote),
            idempotency_key=stripe_key,
        )
    except gateway.CardDeclined as exc:
        payment = _payment_declined(user=user, kind=Payment.Kind.TOPUP, quote=quote, card=card, error=exc)
        _raise_for_status(payment)
        raise
    payment = payment_intent_apply(intent=intent)
    _raise_for_status(payment)
    return payment


def _raise_for_status(payment: Payment) -> None:
    if payment.status == Payment.Status.REQUIRES_ACTION:
        raise AuthenticationRequired(
            "The bank asks the card holder to confirm this payment; the credits are added once they do.",
            payment=payment,
            action_path=action_path(payment),
        )
    if payment.status in (Payment.Status.FAILED, Payment.Status.CANCELED):
        raise PaymentFailed(
            payment.failure_message or "The card was declined; nothing was charged or added.",
            payment=payment,
            decline_code=payment.failure_code,
        )


def _payment_declined(
    *, user, kind: str, quote: money.TopupQuote, card: PaymentMethod, error: gateway.CardDeclined, payment=None
) -> Payment:
    """Records a declined (or authentication-needing) charge; nothing is credited."""
    if error.payment_intent:
        applied = payment_intent_apply(intent=error.payment_intent, decline=error)
        if applied is not None:
            return applied
    status = Payment.Status.REQUIRES_ACTION if error.code == "authentication_required" else Payment.Status.FAILED
    fields = {"status": status, "failure_code": error.code[:100], "failure_message": str(error)[:500]}
    if payment is not None:
        _payment_mark(payment, **fields)
        payment.refresh_from_db()
        return payment
    return Payment.objects.create(
        user=user,
        kind=kind,
        credits_micro=quote.credits_micro,
        price_cents=quote.price_cents,
        fee_cents=quote.fee_cents,
        amount_cents=quote.charge_cents,
        currency=quote.currency,
        card_brand=card.brand,
        card_last4=card.last4,
        **fields,
    )


def payment_intent_apply(*, intent: dict, decline: gateway.CardDeclined | None = None) -> Payment | None:
    """Brings our Payment in line with a PaymentIntent as Stripe reports it (the synchronous answer, a webhook,
    a retrieve). Succeeded credits the wallet once; a later or repeated report changes nothing. None: not ours."""
    payment = _payment_for_intent(intent)
    if payment is None:
        return None
    status = intent.get("status")
    if status == "succeeded":
        _payment_succeed(
            payment,
            amount_cents=int(intent.get("amount_received") or intent.get("amount") or 0),
            currency=str(intent.get("currency") or ""),
            charge=intent.get("latest_charge"),
        )
    elif status in ("requires_action", "requires_confirmation"):
        _payment_mark(payment, status=Payment.Status.REQUIRES_ACTION)
    elif status == "processing":
        _payment_mark(payment, status=Payment.Status.PROCESSING)
    elif status == "canceled":
        _payment_mark(payment, status=Payment.Status.CANCELED)
    elif status == "requires_payment_method":
        error = intent.get("last_payment_error") or {}
        code = str(error.get("code") or (decline.code if decline else "") or "")
        message = str(error.get("message") or (str(decline) if decline else "") or "")
        if code == "authentication_required":
            # Off-session and the bank wants the holder: not a decline; they finish it on the action page.
            _payment_mark(payment, status=Payment.Status.REQUIRES_ACTION, failure_code=code, failure_message=message)
        elif error or decline or payment.status != Payment.Status.PENDING:
            _payment_mark(
                payment,
                status=Payment.Status.FAILED,
                failure_code=code[:100] or "card_declined",
                failure_message=message[:500] or "The card was declined.",
            )
    payment.refresh_from_db()
    return payment


def _payment_for_intent(intent: dict) -> Payment | None:
    """Our Payment for this PaymentIntent: by its id, else by the payment id in its metadata (rows made before
    the charge: auto top-up, Checkout), else made from its metadata (an agent top-up's synchronous answer, or
    its webhook when that comes first: both end on this one row, unique by PaymentIntent id)."""
    intent_id = intent.get("id") or ""
    if not intent_id:
        return None
    payment = Payment.objects.filter(stripe_payment_intent_id=intent_id).first()
    if payment is not None:
        return payment
    metadata = intent.get("metadata") or {}
    if str(metadata.get("payment_id") or "").isdigit():
        payment = Payment.objects.filter(pk=int(metadata["payment_id"])).first()
        if payment is not None:
            try:
                with transaction.atomic():
                    Payment.objects.filter(pk=payment.pk, stripe_payment_intent_id__isnull=True).update(
                        stripe_payment_intent_id=intent_id
                    )
            except IntegrityError:
                logger.warning("PaymentIntent %s is already on another payment than %s", intent_id, payment.pk)
            return Payment.objects.get(pk=payment.pk)
    if not str(metadata.get("user_id") or "").isdigit() or not str(metadata.get("credits_micro") or "").isdigit():
        return None  # not a charge this instance made
    user = User.objects.filter(pk=int(metadata["user_id"])).first()
    if user is None:
        return None
    credits_micro = int(metadata["credits_micro"])
    amount = int(intent.get("amount") or 0)
    price = int(metadata.get("price_cents") or 0) or money.credits_to_cents(credits_micro)
    kind = metadata.get("kind") if metadata.get("kind") in Payment.Kind.values else Payment.Kind.TOPUP
    card = _card_of(intent)
    payment, _ = Payment.objects.get_or_create(
        stripe_payment_intent_id=intent_id,
        defaults={
            "user": user,
            "kind": kind,
            "credits_micro": credits_micro,
            "price_cents": price,
            "fee_cents": max(amount - price, 0),
            "amount_cents": amount,
            "currency": str(intent.get("currency") or settings.BILLING_CURRENCY)[:3],
            "card_brand": card.get("brand", ""),
            "card_last4": card.get("last4", ""),
        },
    )
    return payment


def _card_of(intent: dict) -> dict:
    """Brand and last 4 of the card a PaymentIntent used, from its charge, else from our saved cards."""
    charge = intent.get("latest_charge")
    if isinstance(charge, dict):
        card = (charge.get("payment_method_details") or {}).get("card") or {}
        if card.get("last4"):
            return {"brand": str(card.get("brand") or "")[:32], "last4": str(card["last4"])[:4]}
    method_id = stripe_ref_id(intent.get("payment_method"))
    saved = PaymentMethod.objects.filter(stripe_payment_method_id=method_id).first() if method_id else None
    return {"brand": saved.brand, "last4": saved.last4} if saved else {}


def _payment_mark(payment: Payment, *, status: str, **fields) -> bool:
    """Moves a payment that is not yet succeeded to `status` (succeeded is final: a late failure report about
    an earlier attempt changes nothing)."""
    try:
        with transaction.atomic():
            changed = (
                Payment.objects.filter(pk=payment.pk)
                .exclude(status=Payment.Status.SUCCEEDED)
                .update(status=status, updated_at=timezone.now(), **fields)
            )
    except IntegrityError:
        # Back to "in flight" while another auto top-up of the account is in flight: keep it as it was.
        logger.warning("Payment %s not moved to %s: another auto top-up is in flight", payment.pk, status)
        return False
    return bool(changed)


def _payment_succeed(payment: Payment, *, amount_cents: int, currency: str, charge=None) -> bool:
    """Credits the wallet for a paid payment, exactly once (the row lock and the ledger key both make sure).
    True if this call credited it."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().select_related("user").get(pk=payment.pk)
        if locked.status == Payment.Status.SUCCEEDED:
            return False
        if amount_cents < locked.amount_cents or (currency and currency.lower() != locked.currency.lower()):
            raise PaymentMismatch(
                f"Payment {locked.pk} expected {locked.amount_cents} {locked.currency}, Stripe reports "
                f"{amount_cents} {currency}: not credited."
            )
        entry = _ledger_post(
            user=locked.user,
            amount_micro=locked.credits_micro,
            kind=LedgerEntry.Kind.TOPUP,
            idempotency_key=locked.ledger_key,
            reference=locked.reference,
            description=f"{locked.get_kind_display()}: {money.format_money(locked.amount_cents, locked.currency)}",
        )
        fields = {"status": Payment.Status.SUCCEEDED, "succeeded_at": timezone.now(), "failure_code": ""}
        charge_id = stripe_ref_id(charge)
        if charge_id:
            fields["stripe_charge_id"] = charge_id
        if isinstance(charge, dict):
            card = (charge.get("payment_method_details") or {}).get("card") or {}
            if card.get("last4"):
                fields.update(card_brand=str(card.get("brand") or "")[:32], card_last4=str(card["last4"])[:4])
        Payment.objects.filter(pk=locked.pk).update(**fields)
        for name, value in fields.items():
            setattr(locked, name, value)
        if locked.kind == Payment.Kind.AUTOTOPUP:
            BillingProfile.objects.filter(user=locked.user).update(autotopup_declines=0)
        # A refund or dispute reported before the success (out of order) is applied now.
        _clawback_settle(locked)
        _commission_award(locked, entry)
    payment.refresh_from_db()
    return True


class PaymentMismatch(Exception):
    pass


def _commission_award(payment: Payment, entry: LedgerEntry) -> None:
    from apps.affiliates.services import commission_award

    fingerprint = ""
    if payment.card_last4:
        card = PaymentMethod.objects.filter(user=payment.user, last4=payment.card_last4).exclude(fingerprint="")
        fingerprint = card.values_list("fingerprint", flat=True).first() or ""
    try:
        with transaction.atomic():
            commission_award(
                referred=payment.user,
                payment_reference=payment.reference,
                net_micro=entry.amount_micro,
                fingerprint=fingerprint,
            )
    except Exception:
        # The referrer's commission must never cost the buyer their credits; it is logged for support.
        logger.exception("Affiliate commission failed for payment %s", payment.pk)


# --- Human checkout ----------------------------------------------------------------------------------------


def checkout_start(*, user, credits_micro: int, success_url: str, cancel_url: str) -> str:
    """A Stripe Checkout Session for `credits_micro` (plus the fee); returns the URL to send the buyer to.
    `success_url` may hold {CHECKOUT_SESSION_ID}."""
    _require_stripe()
    topup_amount_check(credits_micro)
    customer_id = customer_ensure(user=user)
    quote = money.topup_quote(credits_micro)
    payment = checkout_payment_create(user=user, quote=quote)
    try:
        session = gateway.checkout_session_create(
            customer_id=customer_id,
            amount_cents=quote.charge_cents,
            currency=quote.currency,
            product_name=f"{money.format_credits(credits_micro)} {settings.SITE_NAME} credits",
            product_description=(
                f"{money.format_money(quote.price_cents, quote.currency)} of credits + "
                f"{money.format_money(quote.fee_cents, quote.currency)} card fee"
            ),
            metadata=_payment_metadata(user=user, kind=Payment.Kind.CHECKOUT, quote=quote, payment_id=payment.pk),
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=f"checkout:{payment.pk}",
        )
    except gateway.GatewayError as exc:
        _payment_mark(payment, status=Payment.Status.FAILED, failure_code="stripe_error", failure_message=str(exc))
        raise
    Payment.objects.filter(pk=payment.pk).update(stripe_checkout_session_id=session["id"])
    return session["url"]


def checkout_payment_create(*, user, quote: money.TopupQuote) -> Payment:
    return Payment.objects.create(
        user=user,
        kind=Payment.Kind.CHECKOUT,
        credits_micro=quote.credits_micro,
        price_cents=quote.price_cents,
        fee_cents=quote.fee_cents,
        amount_cents=quote.charge_cents,
        currency=quote.currency,
    )


def checkout_session_apply(*, session: dict) -> Payment | None:
    """Brings our Payment in line with a Checkout Session (webhook or the buyer's return). Paid → credited once."""
    session_id = session.get("id") or ""
    payment = Payment.objects.filter(stripe_checkout_session_id=session_id).first() if session_id else None
    metadata = session.get("metadata") or {}
    if payment is None and str(metadata.get("payment_id") or "").isdigit():
        payment = Payment.objects.filter(pk=int(metadata["payment_id"]), kind=Payment.Kind.CHECKOUT).first()
        if payment is not None:
            Payment.objects.filter(pk=payment.pk, stripe_checkout_session_id__isnull=True).update(
                stripe_checkout_session_id=session_id
            )
    if payment is None:
        return None
    intent_id = stripe_ref_id(session.get("payment_intent"))
    if intent_id:
        try:
            with transaction.atomic():
                Payment.objects.filter(pk=payment.pk, stripe_payment_intent_id__isnull=True).update(
                    stripe_payment_intent_id=intent_id
                )
        except IntegrityError:
            logger.warning("PaymentIntent %s already belongs to another payment", intent_id)
        payment.refresh_from_db()
    if session.get("payment_status") in ("paid", "no_payment_required"):
        _payment_succeed(
            payment, amount_cents=int(session.get("amount_total") or 0), currency=str(session.get("currency") or "")
        )
    elif session.get("status") == "expired":
        _payment_mark(payment, status=Payment.Status.CANCELED, failure_message="The checkout expired.")
    payment.refresh_from_db()
    return payment


def checkout_failed(*, session: dict) -> None:
    payment = Payment.objects.filter(stripe_checkout_session_id=session.get("id") or "").first()
    if payment is not None:
        _payment_mark(payment, status=Payment.Status.FAILED, failure_message="The payment did not go through.")


def checkout_return(*, user, session_id: str) -> Payment:
    """The buyer is back from Checkout: credit now if Stripe says paid (the webhook may not have come yet)."""
    payment = Payment.objects.filter(user=user, stripe_checkout_session_id=session_id).first()
    if payment is None:
        raise BillingNotFound("No such checkout on this account.")
    if payment.status != Payment.Status.SUCCEEDED and gateway.enabled():
        try:
            session = gateway.checkout_session_retrieve(session_id)
        except gateway.GatewayError:
            logger.warning("Checkout %s could not be read back; the webhook will credit it", session_id)
        else:
            checkout_session_apply(session=session)
            payment.refresh_from_db()
    return payment


def payment_action_refresh(*, payment: Payment) -> Payment:
    """After the card holder acted on the action page: read the PaymentIntent back and apply it."""
    if payment.stripe_payment_intent_id and gateway.enabled():
        payment_intent_apply(intent=gateway.payment_intent_retrieve(payment.stripe_payment_intent_id))
        payment.refresh_from_db()
    return payment


# --- Refunds and disputes: the credits go back, also into a negative balance ---------------------------------


def payment_refund(*, payment: Payment, amount_cents: int | None = None, created_by=None) -> Payment:
    """An admin refunds a payment at Stripe (all of it, or `amount_cents`) and its credits are taken back in
    proportion at once; the `charge.refunded` webhook that follows changes nothing more."""
    _require_stripe()
    if payment.status != Payment.Status.SUCCEEDED or not payment.stripe_payment_intent_id:
        raise InvalidBillingRequest("Only a succeeded card payment can be refunded.")
    remaining = payment.amount_cents - payment.refunded_cents
    amount = remaining if amount_cents is None else amount_cents
    if not 0 < amount <= remaining:
        raise InvalidBillingRequest(f"The refund must be 0.01 to {money.format_money(remaining, payment.currency)}.")
    refund = gateway.refund_create(
        payment_intent_id=payment.stripe_payment_intent_id,
        amount_cents=amount,
        idempotency_key=f"refund:{payment.pk}:{payment.refunded_cents}:{amount}",
    )
    refunded = payment.refunded_cents + int(refund.get("amount") or amount)
    charge_id = stripe_ref_id(refund.get("charge")) or payment.stripe_charge_id
    if charge_id:
        with contextlib.suppress(gateway.GatewayError):  # the refund's own amount is known anyway
            refunded = max(refunded, int(gateway.charge_retrieve(charge_id).get("amount_refunded") or 0))
    payment_reversal_apply(payment=payment, refunded_cents=refunded)
    payment.refresh_from_db()
    return payment


def payment_reversal_apply(
    *, payment: Payment, refunded_cents: int | None = None, dispute_status: str = "", dispute_lost_cents: int = 0
) -> None:
    """Records a refund total or a dispute's state and takes back the matching credits. Totals only grow, so
    events in any order and any number of times end in the same books."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().select_related("user").get(pk=payment.pk)
        if refunded_cents is not None:
            locked.refunded_cents = max(locked.refunded_cents, min(refunded_cents, locked.amount_cents))
        if dispute_status and locked.dispute_status not in ("won", "lost"):
            locked.dispute_status = dispute_status
        if dispute_lost_cents:
            locked.dispute_lost_cents = max(locked.dispute_lost_cents, min(dispute_lost_cents, locked.amount_cents))
        Payment.objects.filter(pk=locked.pk).update(
            refunded_cents=locked.refunded_cents,
            dispute_status=locked.dispute_status,
            dispute_lost_cents=locked.dispute_lost_cents,
        )
        if locked.status == Payment.Status.SUCCEEDED:
            _clawback_settle(locked)


def _clawback_settle(payment: Payment) -> None:
    """Takes back what the refunds and lost disputes so far call for, minus what was already taken (locked row)."""
    lost_cents = min(payment.refunded_cents + payment.dispute_lost_cents, payment.amount_cents)
    target = money.share_of(payment.credits_micro, lost_cents, payment.amount_cents)
    missing = target - payment.clawed_back_micro
    if missing <= 0:
        return
    why = "refunded" if payment.refunded_cents else "lost in a dispute"
    credits_claw_back(
        wallet_id=wallet_get(user=payment.user).pk,
        amount_micro=missing,
        idempotency_key=f"{payment.ledger_key}:clawback:{target}",
        reference=payment.reference,
        description=f"Payment {payment.pk} {why}: its credits are taken back",
    )
    Payment.objects.filter(pk=payment.pk).update(clawed_back_micro=target)
    payment.clawed_back_micro = target
    BillingEvent.objects.create(
        user=payment.user,
        kind=BillingEvent.Kind.CLAWBACK,
        payment=payment,
        message=f"{money.format_credits(missing)} credits taken back: payment {payment.pk} was {why}.",
    )
    from apps.affiliates.services import commission_reverse

    try:
        with transaction.atomic():
            commission_reverse(payment_reference=payment.reference)
    except Exception:
        logger.exception("Affiliate commission reversal failed for payment %s", payment.pk)


def _payment_for_charge(charge_like: dict) -> Payment | None:
    """The payment a charge, refund or dispute is about. A refund reported before its payment (out of order)
    reads the PaymentIntent from Stripe first, which records (and credits) the payment, then applies."""
    intent_id = stripe_ref_id(charge_like.get("payment_intent"))
    if intent_id:
        payment = Payment.objects.filter(stripe_payment_intent_id=intent_id).first()
        if payment is not None:
            return payment
    charge_id = stripe_ref_id(charge_like.get("charge")) or (
        charge_like.get("id", "") if charge_like.get("object") == "charge" else ""
    )
    payment = Payment.objects.filter(stripe_charge_id=charge_id).first() if charge_id else None
    if payment is None and intent_id and gateway.enabled():
        try:
            payment = payment_intent_apply(intent=gateway.payment_intent_retrieve(intent_id))
        except gateway.NotFound:
            return None  # not a payment of this Stripe account's charges that we know
    return payment


# --- Auto top-up ---------------------------------------------------------------------------------------------


def autotopup_configure(
    *,
    user,
    enabled: bool,
    mode: str = BillingProfile.Mode.FIXED,
    trigger_micro: int = 0,
    amount_micro: int | None = None,
    target_micro: int | None = None,
    daily_cap_micro: int | None = None,
    monthly_cap_micro: int | None = None,
) -> BillingProfile:
    """Switches auto top-up on or off. Switched on below its trigger, it charges at once (in a task)."""
    low, high = money.setting_credits("TOPUP_MIN_CREDITS"), money.setting_credits("TOPUP_MAX_CREDITS")
    day_max = money.setting_credits("AUTOTOPUP_DAILY_CAP_CREDITS")
    month_max = money.setting_credits("AUTOTOPUP_MONTHLY_CAP_CREDITS")
    if enabled:
        _require_stripe()
        if mode not in BillingProfile.Mode.values:
            raise InvalidBillingRequest("mode is 'fixed' or 'buffer'.", field="mode")
        if trigger_micro < 0:
            raise InvalidBillingRequest("trigger_credits cannot be negative.", field="trigger_credits")
        if mode == BillingProfile.Mode.FIXED and not (amount_micro and low <= amount_micro <= high):
            raise InvalidBillingRequest(
                f"amount_credits is {money.format_credits(low)} to {money.format_credits(high)} in fixed mode.",
                field="amount_credits",
            )
        if mode == BillingProfile.Mode.BUFFER and not (target_micro and trigger_micro < target_micro <= high):
            raise InvalidBillingRequest(
                f"target_credits must be above trigger_credits and at most {money.format_credits(high)}.",
                field="target_credits",
            )
        for name, value, ceiling in (
            ("daily_cap_credits", daily_cap_micro, day_max),
            ("monthly_cap_credits", monthly_cap_micro, month_max),
        ):
            if value is not None and not 0 < value <= ceiling:
                raise InvalidBillingRequest(
                    f"{name} is more than 0 and at most {money.format_credits(ceiling)} on this instance.", field=name
                )
        if not PaymentMethod.objects.filter(user=user).exists():
            raise PaymentMethodRequired(
                "Auto top-up charges a saved card: save one with agent_setup_payment.php (or on /billing.php)."
            )
    with transaction.atomic():
        profile = billing_profile_get(user=user)
        profile = BillingProfile.objects.select_for_update().get(pk=profile.pk)
        profile.autotopup_enabled = enabled
        if enabled:
            profile.autotopup_mode = mode
            profile.autotopup_trigger_micro = trigger_micro
            profile.autotopup_amount_micro = amount_micro or 0
            profile.autotopup_target_micro = target_micro or 0
            profile.autotopup_daily_cap_micro = daily_cap_micro
            profile.autotopup_monthly_cap_micro = monthly_cap_micro
            profile.autotopup_declines = 0
            profile.autotopup_disabled_reason = ""
        profile.save()
        wallet = wallet_get(user=user)
        Wallet.objects.filter(pk=wallet.pk).update(autotopup_trigger_micro=trigger_micro if enabled else None)
        if enabled and wallet.balance_micro < trigger_micro:
            transaction.on_commit(lambda: _enqueue("autotopup_run", wallet.pk))
    return profile


def _autotopup_switch_off(*, user, reason: str) -> bool:
    """Switches auto top-up off (inside the caller's transaction). True if it was on."""
    changed = BillingProfile.objects.filter(user=user, autotopup_enabled=True).update(
        autotopup_enabled=False, autotopup_disabled_reason=reason[:300]
    )
    Wallet.objects.filter(user=user).update(autotopup_trigger_micro=None)
    if changed:
        BillingEvent.objects.create(
            user=user, kind=BillingEvent.Kind.AUTOTOPUP_DISABLED, message=f"Auto top-up switched off: {reason}"
        )
    return bool(changed)


def autotopup_amount(*, profile: BillingProfile, balance_micro: int) -> int | None:
    """Credits to buy now, or None when the balance is not below the trigger."""
    if balance_micro >= profile.autotopup_trigger_micro:
        return None
    low, high = money.setting_credits("TOPUP_MIN_CREDITS"), money.setting_credits("TOPUP_MAX_CREDITS")
    if profile.autotopup_mode == BillingProfile.Mode.BUFFER:
        wanted = profile.autotopup_target_micro - balance_micro
    else:
        wanted = profile.autotopup_amount_micro
    return min(max(wanted, low), high)


def _autotopup_spent(*, user, since, exclude_pk: int) -> int:
    counted = [*Payment.IN_FLIGHT, Payment.Status.SUCCEEDED]
    return (
        Payment.objects.filter(user=user, kind=Payment.Kind.AUTOTOPUP, status__in=counted, created_at__gte=since)
        .exclude(pk=exclude_pk)
        .aggregate(total=Sum("credits_micro"))["total"]
        or 0
    )


def autotopup_run(*, wallet_id: int) -> Payment | None:
    """Charges the saved card if the wallet is below its trigger. Runs after every hold and on a schedule;
    any number of concurrent runs make at most one charge: each claims the one in-flight auto top-up of the
    account (a unique index) and only then looks at the balance."""
    wallet = Wallet.objects.select_related("user").filter(pk=wallet_id).first()
    if wallet is None or wallet.autotopup_trigger_micro is None or not gateway.enabled():
        return None
    if wallet.balance_micro >= wallet.autotopup_trigger_micro:
        return None
    user = wallet.user
    card = PaymentMethod.objects.filter(user=user, is_default=True).first()
    if card is None:
        with transaction.atomic():
            _autotopup_switch_off(user=user, reason="There is no saved card to charge.")
        return None
    now = timezone.now()
    with transaction.atomic():
        try:
            with transaction.atomic():
                payment = Payment.objects.create(
                    user=user,
                    kind=Payment.Kind.AUTOTOPUP,
                    credits_micro=1,
                    price_cents=1,
                    fee_cents=0,
                    amount_cents=1,
                    card_brand=card.brand,
                    card_last4=card.last4,
                )
        except IntegrityError:
            return None  # another auto top-up of this account is in flight
        profile = BillingProfile.objects.filter(user=user).first()
        balance = Wallet.objects.filter(pk=wallet_id).values_list("balance_micro", flat=True).get()
        amount = autotopup_amount(profile=profile, balance_micro=balance) if profile.autotopup_enabled else None
        if amount is None:
            transaction.set_rollback(True)  # drops the claim: nothing to do (a concurrent run topped it up)
            return None
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        daily_cap = profile.autotopup_daily_cap_micro or money.setting_credits("AUTOTOPUP_DAILY_CAP_CREDITS")
        monthly_cap = profile.autotopup_monthly_cap_micro or money.setting_credits("AUTOTOPUP_MONTHLY_CAP_CREDITS")
        for label, since, cap in (("daily", day_start, daily_cap), ("monthly", day_start.replace(day=1), monthly_cap)):
            if _autotopup_spent(user=user, since=since, exclude_pk=payment.pk) + amount > cap:
                capped = (label, cap, since)
                break
        else:
            capped = None
        if capped is not None:
            transaction.set_rollback(True)  # drops the claim
        else:
            quote = money.topup_quote(amount)
            Payment.objects.filter(pk=payment.pk).update(
                credits_micro=quote.credits_micro,
                price_cents=quote.price_cents,
                fee_cents=quote.fee_cents,
                amount_cents=quote.charge_cents,
                currency=quote.currency,
            )
    if capped is not None:
        label, cap, since = capped
        _autotopup_cap_reached(user=user, label=label, cap_micro=cap, since=since)
        return None
    payment.refresh_from_db()
    return _autotopup_charge(payment=payment, card=card, quote=quote, profile=profile)


def _autotopup_charge(*, payment: Payment, card: PaymentMethod, quote, profile: BillingProfile) -> Payment:
    user = payment.user
    try:
        intent = gateway.payment_intent_create_off_session(
            customer_id=profile.stripe_customer_id or customer_ensure(user=user),
            payment_method_id=card.stripe_payment_method_id,
            amount_cents=quote.charge_cents,
            currency=quote.currency,
            metadata=_payment_metadata(user=user, kind=Payment.Kind.AUTOTOPUP, quote=quote, payment_id=payment.pk),
            idempotency_key=f"autotopup:{payment.pk}",
        )
    except gateway.CardDeclined as exc:
        payment = _payment_declined(
            user=user, kind=Payment.Kind.AUTOTOPUP, quote=quote, card=card, error=exc, payment=payment
        )
    except gateway.GatewayError as exc:
        # The outcome is unknown: the payment stays in flight and the reconciler asks Stripe again with the same
        # idempotency key (one charge at most).
        BillingEvent.objects.create(
            user=user, kind=BillingEvent.Kind.AUTOTOPUP_ERROR, payment=payment, message=f"Stripe: {exc}"[:500]
        )
        return payment
    else:
        payment = payment_intent_apply(intent=intent) or payment
    _autotopup_after(payment)
    return payment


def _autotopup_after(payment: Payment) -> None:
    """The account hears of an auto top-up's outcome (event, and email where it matters)."""
    amount = money.format_money(payment.amount_cents, payment.currency)
    credits = money.format_credits(payment.credits_micro)
    if payment.status == Payment.Status.SUCCEEDED:
        BillingEvent.objects.create(
            user=payment.user,
            kind=BillingEvent.Kind.AUTOTOPUP_SUCCEEDED,
            payment=payment,
            message=f"Added {credits} credits; charged {amount}.",
        )
    elif payment.status == Payment.Status.REQUIRES_ACTION:
        path = action_path(payment)
        BillingEvent.objects.create(
            user=payment.user,
            kind=BillingEvent.Kind.AUTOTOPUP_REQUIRES_ACTION,
            payment=payment,
            message=f"The bank asks the card holder to confirm {amount}: {path}",
        )
        _email(
            payment.user,
            "billing/email/action_required.txt",
            subject="Confirm your auto top-up",
            context={"payment": payment, "amount": amount, "credits": credits, "url": _absolute(path)},
        )
    elif payment.status in (Payment.Status.FAILED, Payment.Status.CANCELED):
        _autotopup_declined(payment)


def _autotopup_declined(payment: Payment) -> None:
    reason = payment.failure_message or "The card was declined."
    with transaction.atomic():
        profile = BillingProfile.objects.select_for_update().get(user=payment.user)
        profile.autotopup_declines += 1
        BillingProfile.objects.filter(pk=profile.pk).update(autotopup_declines=profile.autotopup_declines)
        BillingEvent.objects.create(
            user=payment.user,
            kind=BillingEvent.Kind.AUTOTOPUP_DECLINED,
            payment=payment,
            message=f"Declined ({profile.autotopup_declines} in a row): {reason}"[:500],
        )
        limit = settings.AUTOTOPUP_MAX_DECLINES
        switched_off = profile.autotopup_declines >= limit and _autotopup_switch_off(
            user=payment.user, reason=f"{limit} declines in a row. Last: {reason}"
        )
    if switched_off:
        _email(
            payment.user,
            "billing/email/autotopup_disabled.txt",
            subject="Auto top-up switched off",
            context={"limit": limit, "reason": reason, "url": _absolute(reverse("billing:page"))},
        )


def _autotopup_cap_reached(*, user, label: str, cap_micro: int, since) -> None:
    # One event per cap and period, not one per hold.
    kind = BillingEvent.Kind.AUTOTOPUP_CAP_REACHED
    message = f"The {label} auto top-up cap of {money.format_credits(cap_micro)} credits is reached."
    if not BillingEvent.objects.filter(user=user, kind=kind, message=message, created_at__gte=since).exists():
        BillingEvent.objects.create(user=user, kind=kind, message=message)


# --- Low-balance notice ------------------------------------------------------------------------------------


def low_balance_configure(*, user, threshold_micro: int | None, webhook_url: str = "") -> BillingProfile:
    """An account-chosen threshold (None: no notice) and where the notice goes besides the account's email."""
    if threshold_micro is not None and threshold_micro < 0:
        raise InvalidBillingRequest("threshold_credits cannot be negative.", field="threshold_credits")
    with transaction.atomic():
        profile = billing_profile_get(user=user)
        wallet = Wallet.objects.select_for_update().get(pk=wallet_get(user=user).pk)
        Wallet.objects.filter(pk=wallet.pk).update(low_balance_threshold_micro=threshold_micro)
        # Already below when it is set: no notice for a crossing the account just saw for itself.
        sent = threshold_micro is not None and wallet.balance_micro < threshold_micro
        BillingProfile.objects.filter(pk=profile.pk).update(
            low_balance_webhook_url=webhook_url, low_balance_notice_sent=sent
        )
    profile.refresh_from_db()
    return profile


def low_balance_notify(*, wallet_id: int) -> bool:
    """One notice per crossing below the threshold (email, and the account's webhook if set). True if sent."""
    with transaction.atomic():
        wallet = Wallet.objects.select_related("user").filter(pk=wallet_id).first()
        threshold = wallet.low_balance_threshold_micro if wallet is not None else None
        if threshold is None or wallet.balance_micro >= threshold:
            return False
        billing_profile_get(user=wallet.user)
        if not BillingProfile.objects.filter(user=wallet.user, low_balance_notice_sent=False).update(
            low_balance_notice_sent=True
        ):
            return False  # already told about this crossing
        profile = BillingProfile.objects.get(user=wallet.user)
        balance = money.format_credits(wallet.balance_micro)
        BillingEvent.objects.create(
            user=wallet.user,
            kind=BillingEvent.Kind.LOW_BALANCE,
            message=f"The balance ({balance} credits) fell below {money.format_credits(threshold)} credits.",
        )
    _email(
        wallet.user,
        "billing/email/low_balance.txt",
        subject="Your credit balance is low",
        context={
            "balance": balance,
            "threshold": money.format_credits(threshold),
            "url": _absolute(reverse("billing:page")),
        },
    )
    if profile.low_balance_webhook_url:
        _webhook_post(
            profile.low_balance_webhook_url,
            {
                "event": "low_balance",
                "credits": money.micro_to_json(wallet.balance_micro),
                "threshold_credits": money.micro_to_json(threshold),
                "topup": {"endpoint": "/api/v1/agent_topup.php", "billing_url": _absolute(reverse("billing:page"))},
            },
        )
    return True


def _webhook_post(url: str, body: dict) -> bool:
    """POSTs a notice to an account's own URL through the outbound guard (address checked and pinned, public only),
    short timeout, no redirect, no retry."""
    try:
        response = safe_request(
            "POST", url, json=body, headers={"User-Agent": "KiwiWhale-billing/1"}, timeout=10.0, max_bytes=64 * 1024
        )
    except FetchError as exc:
        logger.warning("Low-balance webhook to %s failed: %s", urlsplit(url).hostname, exc)
        return False
    return response.is_success


def _email(user, template: str, *, subject: str, context: dict) -> None:
    if not user.email:
        return  # agent accounts may have none; the event is visible through the API
    body = render_to_string(template, {**context, "user": user, "site_name": settings.SITE_NAME})
    try:
        send_mail(f"[{settings.SITE_NAME}] {subject}", body, None, [user.email])
    except Exception:
        logger.exception("Could not send %s to user %s", template, user.pk)


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}" if settings.SITE_URL else path


# --- Redemption codes ----------------------------------------------------------------------------------------

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed without mistakes
CODE_GROUPS, CODE_GROUP_LENGTH = 4, 5  # 20 characters of 5 bits = 100 bits: not guessable


def _code_normalize(raw: str) -> str:
    return "".join(ch for ch in (raw or "").upper() if ch.isalnum())


def _code_hash(normalized: str) -> str:
    return hashlib.sha256(f"kiwiwhale-code:{normalized}".encode()).hexdigest()


def redemption_batch_create(
    *, name: str, credits_micro: int, count: int, max_uses: int = 1, expires_at=None, created_by=None
) -> tuple[RedemptionBatch, list[str]]:
    """Makes `count` codes; returns them in clear this once (only their hashes are kept)."""
    if credits_micro <= 0 or not 1 <= count <= 10_000 or max_uses < 1:
        raise InvalidBillingRequest("A batch has 1 to 10000 codes worth more than 0 credits, each used once or more.")
    codes = []
    with transaction.atomic():
        batch = RedemptionBatch.objects.create(
            name=name, credits_micro=credits_micro, max_uses=max_uses, expires_at=expires_at, created_by=created_by
        )
        rows = []
        for _ in range(count):
            raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LENGTH))
            codes.append("-".join(raw[i : i + CODE_GROUP_LENGTH] for i in range(0, len(raw), CODE_GROUP_LENGTH)))
            rows.append(RedemptionCode(batch=batch, code_hash=_code_hash(raw), hint=raw[-4:]))
        RedemptionCode.objects.bulk_create(rows)
    return batch, codes


def code_redeem(*, user, code: str, client_ip: str = "") -> Redemption:
    """Adds a code's credits to the account's wallet: one ledger entry per (code, account). Attempts are
    rate-limited per account and per client address, so codes cannot be found by trying."""
    for scope, ident, rate in (
        ("redeem-account", str(user.pk), settings.RATE_REDEEM_ACCOUNT),
        ("redeem-ip", client_ip, settings.RATE_REDEEM_IP),
    ):
        if ident:
            wait = rate_limit_hit(scope, ident, rate=rate)
            if wait:
                raise RateLimited(wait)
    normalized = _code_normalize(code)
    found = (
        RedemptionCode.objects.select_related("batch").filter(code_hash=_code_hash(normalized)).first()
        if normalized
        else None
    )
    if found is None:
        raise RedemptionRefused("This code is not valid.", code="invalid_code")
    batch = found.batch
    if batch.disabled or batch.is_expired():
        raise RedemptionRefused("This code has expired.", code="code_expired", status=410)
    try:
        with transaction.atomic():
            if Redemption.objects.filter(code=found, user=user).exists():
                raise RedemptionRefused(
                    "You have already redeemed this code.", code="code_already_redeemed", status=409
                )
            if not RedemptionCode.objects.filter(pk=found.pk, uses__lt=batch.max_uses).update(uses=F("uses") + 1):
                raise RedemptionRefused("This code has been used up.", code="code_used_up", status=410)
            entry = _ledger_post(
                user=user,
                amount_micro=batch.credits_micro,
                kind=LedgerEntry.Kind.REDEMPTION,
                idempotency_key=f"redeem:{found.pk}:{user.pk}",
                reference=f"code …{found.hint}",
                description=f"Redemption code ({batch.name})",
            )
            return Redemption.objects.create(code=found, user=user, entry=entry)
    except IntegrityError as exc:  # the same account redeeming the same code twice at once
        raise RedemptionRefused(
            "You have already redeemed this code.", code="code_already_redeemed", status=409
        ) from exc


# --- Webhooks ----------------------------------------------------------------------------------------------


class WebhookHandlingFailed(Exception):
    pass


def stripe_event_receive(*, payload: bytes, signature_header: str) -> StripeEvent:
    """Verifies, stores once, dispatches. A known event that was handled is not handled again; one whose
    handling failed is tried again when Stripe redelivers it. Raises gateway.BadSignature, WebhookHandlingFailed."""
    event = gateway.event_verify(payload=payload, signature_header=signature_header)
    created_at = event.get("created")
    record, created = StripeEvent.objects.get_or_create(
        event_id=str(event["id"])[:255],
        defaults={
            "type": str(event["type"])[:100],
            "payload": event,
            "stripe_created_at": datetime.fromtimestamp(created_at, tz=UTC) if isinstance(created_at, int) else None,
        },
    )
    if not created and record.status in (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED):
        return record
    stripe_event_process(event=record)
    return record


def stripe_event_process(*, event: StripeEvent) -> None:
    """Runs the handler of a stored event and records how it went (also used by the admin's "process again")."""
    handler = WEBHOOK_HANDLERS.get(event.type)
    StripeEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    if handler is None:
        _event_mark(event, StripeEvent.Status.IGNORED)
        return
    try:
        handler(((event.payload.get("data") or {}).get("object")) or {})
    except Exception as exc:
        logger.exception("Stripe event %s (%s) failed", event.event_id, event.type)
        _event_mark(event, StripeEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise WebhookHandlingFailed(str(exc)) from exc
    _event_mark(event, StripeEvent.Status.PROCESSED)


def _event_mark(event: StripeEvent, status: str, error: str = "") -> None:
    StripeEvent.objects.filter(pk=event.pk).update(status=status, error=error[:5000], processed_at=timezone.now())
    event.status, event.error = status, error


def _on_intent(intent: dict) -> None:
    payment_intent_apply(intent=intent)


def _on_checkout_completed(session: dict) -> None:
    checkout_session_apply(session=session)


def _on_checkout_failed(session: dict) -> None:
    checkout_failed(session=session)


def _on_charge_refunded(charge: dict) -> None:
    payment = _payment_for_charge(charge)
    if payment is not None:
        payment_reversal_apply(payment=payment, refunded_cents=int(charge.get("amount_refunded") or 0))


def _on_dispute(dispute: dict) -> None:
    payment = _payment_for_charge(dispute)
    if payment is None:
        return
    status = str(dispute.get("status") or "")
    lost = int(dispute.get("amount") or 0) if status == "lost" else 0
    payment_reversal_apply(payment=payment, dispute_status=status[:32], dispute_lost_cents=lost)


def _on_setup_succeeded(intent: dict) -> None:
    # The holder saved a card on the setup page: keep it even if the agent never confirms.
    profile = BillingProfile.objects.select_related("user").filter(stripe_customer_id=intent.get("customer")).first()
    if profile is not None and intent.get("payment_method"):
        payment_method_confirm(user=profile.user, setup_intent_id=intent["id"])


def _on_payment_method_detached(method: dict) -> None:
    saved = PaymentMethod.objects.select_related("user").filter(stripe_payment_method_id=method.get("id")).first()
    if saved is not None:
        with transaction.atomic():
            PaymentMethod.objects.filter(pk=saved.pk).delete()
            if saved.is_default:
                successor = PaymentMethod.objects.filter(user=saved.user).order_by("-created_at").first()
                if successor is not None:
                    PaymentMethod.objects.filter(pk=successor.pk).update(is_default=True)
            if not PaymentMethod.objects.filter(user=saved.user).exists():
                _autotopup_switch_off(user=saved.user, reason="The saved card was removed at Stripe.")


WEBHOOK_HANDLERS = {
    "payment_intent.succeeded": _on_intent,
    "payment_intent.payment_failed": _on_intent,
    "payment_intent.processing": _on_intent,
    "payment_intent.requires_action": _on_intent,
    "payment_intent.canceled": _on_intent,
    "checkout.session.completed": _on_checkout_completed,
    "checkout.session.async_payment_succeeded": _on_checkout_completed,
    "checkout.session.expired": _on_checkout_completed,
    "checkout.session.async_payment_failed": _on_checkout_failed,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.updated": _on_dispute,
    "charge.dispute.closed": _on_dispute,
    "setup_intent.succeeded": _on_setup_succeeded,
    "payment_method.detached": _on_payment_method_detached,
}


# --- Reconciliation (beat) ------------------------------------------------------------------------------------


def payments_reconcile(*, older_than_seconds: int = 600) -> int:
    """Payments still in flight after a while: ask Stripe how they ended (a lost webhook, a crash between the
    charge and its answer). An auto top-up that never reached Stripe is asked for again under its own
    idempotency key, so Stripe answers with the first charge if there was one. Returns how many were looked at."""
    if not gateway.enabled():
        return 0
    now = timezone.now()
    stale = Payment.objects.filter(
        status__in=Payment.IN_FLIGHT, created_at__lt=now - timedelta(seconds=older_than_seconds)
    ).select_related("user")[:200]
    looked = 0
    for payment in stale:
        looked += 1
        try:
            if payment.stripe_payment_intent_id:
                payment_intent_apply(intent=gateway.payment_intent_retrieve(payment.stripe_payment_intent_id))
            elif payment.kind == Payment.Kind.CHECKOUT and payment.stripe_checkout_session_id:
                checkout_session_apply(session=gateway.checkout_session_retrieve(payment.stripe_checkout_session_id))
            elif payment.kind == Payment.Kind.AUTOTOPUP:
                _autotopup_retry(payment)
            elif payment.created_at < now - timedelta(days=1):
                _payment_mark(payment, status=Payment.Status.CANCELED, failure_message="Never reached Stripe.")
        except gateway.GatewayError:
            logger.warning("Reconciling payment %s failed; next run tries again", payment.pk, exc_info=True)
        payment.refresh_from_db()
        if payment.status == Payment.Status.REQUIRES_ACTION and payment.created_at < now - timedelta(
            seconds=settings.BILLING_LINK_MAX_AGE_SECONDS
        ):
            # Its link has expired: an auto top-up waiting for the holder forever would block the next one.
            _payment_mark(payment, status=Payment.Status.CANCELED, failure_message="Not confirmed in time.")
    return looked


def _autotopup_retry(payment: Payment) -> None:
    card = PaymentMethod.objects.filter(user=payment.user, is_default=True).first()
    profile = BillingProfile.objects.filter(user=payment.user).first()
    if card is None or profile is None or payment.created_at < timezone.now() - timedelta(hours=23):
        # Stripe keeps idempotency keys for 24 hours: past that a retry could charge twice; give up instead.
        _payment_mark(payment, status=Payment.Status.CANCELED, failure_message="Stripe could not be reached.")
        return
    quote = money.TopupQuote(
        credits_micro=payment.credits_micro,
        price_cents=payment.price_cents,
        fee_cents=payment.fee_cents,
        charge_cents=payment.amount_cents,
        currency=payment.currency,
    )
    _autotopup_charge(payment=payment, card=card, quote=quote, profile=profile)


@dataclass(frozen=True)
class LedgerProblem:
    wallet_id: int
    user: str
    balance_micro: int
    entries_sum_micro: int
    clawback_sum_micro: int = 0

    def __str__(self):
        if self.balance_micro != self.entries_sum_micro:
            return (
                f"wallet {self.wallet_id} ({self.user}): balance {self.balance_micro} µ, "
                f"entries sum {self.entries_sum_micro} µ"
            )
        return (
            f"wallet {self.wallet_id} ({self.user}): balance {self.balance_micro} µ is below what clawbacks "
            f"explain ({self.clawback_sum_micro} µ)"
        )


def ledger_check() -> list[LedgerProblem]:
    """The invariant: every wallet's balance equals the sum of its entries, and it is negative only as far as
    clawbacks (refunded or lost-disputed payments) took it: balance >= the sum of its clawback entries."""
    big = models.BigIntegerField()
    wallets = Wallet.objects.select_related("user").annotate(
        entries_sum=models.functions.Coalesce(Sum("entries__amount_micro"), 0, output_field=big),
        clawback_sum=models.functions.Coalesce(
            Sum("entries__amount_micro", filter=Q(entries__kind=LedgerEntry.Kind.CLAWBACK)), 0, output_field=big
        ),
    )
    return [
        LedgerProblem(w.pk, str(w.user), w.balance_micro, w.entries_sum, w.clawback_sum)
        for w in wallets
        if w.balance_micro != w.entries_sum or w.balance_micro < min(0, w.clawback_sum)
    ]
