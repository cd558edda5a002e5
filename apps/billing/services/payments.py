"""Money in through Stripe: one lifecycle for Checkout, agent top-ups and auto top-ups, refunds and disputes.

One function applies whatever Stripe says about a PaymentIntent (the synchronous answer, a webhook, a page's
return, the reconciler); it locks, re-checks and returns early, so they can all run, in any order, any number of
times, and the wallet is credited once.
"""

import contextlib
import hashlib
import logging
import uuid

from celery import signature
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.billing import money
from apps.billing import stripe_gateway as gateway
from apps.billing.models import BillingEvent, BillingProfile, LedgerEntry, Payment, PaymentMethod
from apps.billing.services.customers import (
    _default_card,
    _require_stripe,
    action_path,
    customer_ensure,
    stripe_ref_id,
)
from apps.billing.services.errors import (
    AuthenticationRequired,
    BillingNotFound,
    IdempotencyKeyReused,
    InvalidBillingRequest,
    PaymentFailed,
    PaymentMismatch,
)
from apps.billing.services.ledger import _ledger_post, credits_claw_back, wallet_get
from kiwiwhale.lib.tasks import task_enqueue

logger = logging.getLogger(__name__)

COMMISSION_AWARD_TASK = "apps.affiliates.tasks.commission_award_for_payment"
COMMISSION_REVERSE_TASK = "apps.affiliates.tasks.commission_reverse_for_payment"


def topup_amount_check(credits_micro: int, *, field: str = "credits") -> None:
    low, high = money.setting_credits("TOPUP_MIN_CREDITS"), money.setting_credits("TOPUP_MAX_CREDITS")
    if not low <= credits_micro <= high:
        raise InvalidBillingRequest(
            f"A top-up is {money.format_credits(low)} to {money.format_credits(high)} credits.", field=field
        )


# --- The lifecycle: open (a committed row) → charge (Stripe, outside any transaction) → apply (once) --------------
#
# 1. `payment_open` writes the Payment with what Stripe will be asked: its card, amount and idempotency key, and
#    commits it. A crash from here on leaves a row the reconciler finds.
# 2. `payment_charge` sends exactly that request to Stripe, never inside a transaction. An unknown outcome (the
#    network) leaves the row in flight; a retry (the same request, the reconciler) sends the same card under the
#    same key, and Stripe answers it with the first charge if there was one.
# 3. `payment_intent_apply` applies whatever Stripe says (that answer, a webhook, a read-back), exactly once.


def payment_open(
    *, user, kind: str, quote: money.TopupQuote, idempotency_key: str, card: PaymentMethod | None = None
) -> Payment:
    """The Payment row, committed before Stripe hears of it; an existing row with this key is returned as it is."""
    fields = {
        "user": user,
        "kind": kind,
        "credits_micro": quote.credits_micro,
        "price_cents": quote.price_cents,
        "fee_cents": quote.fee_cents,
        "amount_cents": quote.charge_cents,
        "currency": quote.currency,
    }
    if card is not None:
        fields.update(
            stripe_payment_method_id=card.stripe_payment_method_id, card_brand=card.brand, card_last4=card.last4
        )
    try:
        with transaction.atomic():
            payment, _ = Payment.objects.get_or_create(stripe_idempotency_key=idempotency_key, defaults=fields)
    except IntegrityError:  # the same key opened at the same moment by a concurrent retry
        payment = Payment.objects.get(stripe_idempotency_key=idempotency_key)
    return payment


def _payment_metadata(payment: Payment) -> dict:
    # Derived from the row only, so a retry sends byte-for-byte the request Stripe saw first.
    return {
        "kiwiwhale": "1",
        "user_id": payment.user_id,
        "kind": payment.kind,
        "credits_micro": payment.credits_micro,
        "price_cents": payment.price_cents,
        "fee_cents": payment.fee_cents,
        "payment_id": payment.pk,
    }


def payment_charge(*, payment: Payment) -> Payment:
    """Charges the payment's stored card off-session under its stored idempotency key and applies the answer.

    Raises gateway.GatewayError when Stripe could not be asked or its answer was lost: the payment stays in flight
    and the reconciler sends the same request again (one charge at most). A decline is recorded, not raised.
    """
    if not payment.stripe_payment_method_id or not payment.stripe_idempotency_key:
        raise ValueError(f"Payment {payment.pk} has no stored card or idempotency key to charge with.")
    try:
        intent = gateway.payment_intent_create_off_session(
            customer_id=customer_ensure(user=payment.user),
            payment_method_id=payment.stripe_payment_method_id,
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            metadata=_payment_metadata(payment),
            idempotency_key=payment.stripe_idempotency_key,
        )
    except gateway.CardDeclined as exc:
        return _payment_declined(payment=payment, error=exc)
    try:
        return payment_intent_apply(intent=intent) or payment
    except PaymentMismatch:
        # Flagged on the row for support (payment_intent_apply did it); the wallet gets nothing until then.
        payment.refresh_from_db()
        return payment


def topup_charge(*, user, credits_micro: int, request_key: str = "") -> Payment:
    """Charges the default card off-session for `credits_micro` plus the fee; the wallet receives exactly
    `credits_micro`. Raises PaymentFailed (nothing added) or AuthenticationRequired (added when the holder
    finishes), gateway.GatewayError when the outcome is unknown (the reconciler settles it). `request_key` (the
    request's Idempotency-Key) makes a retry of the same request the same payment, charged once."""
    _require_stripe()
    topup_amount_check(credits_micro)
    card = _default_card(user)
    customer_ensure(user=user)
    if request_key:
        # The card is part of the key: a request declined on one card may be retried with its key on another.
        prefix = f"topup:{user.pk}:{hashlib.sha256(request_key.encode()).hexdigest()[:32]}:"
        if Payment.objects.filter(stripe_idempotency_key__startswith=prefix).exclude(credits_micro=credits_micro):
            raise IdempotencyKeyReused("This Idempotency-Key was used with a different request body.")
        stripe_key = prefix + card.stripe_payment_method_id
    else:
        stripe_key = f"topup:{user.pk}:{uuid.uuid4().hex}"
    payment = payment_open(
        user=user,
        kind=Payment.Kind.TOPUP,
        quote=money.topup_quote(credits_micro),
        idempotency_key=stripe_key,
        card=card,
    )
    if payment.status == Payment.Status.PENDING:
        payment = payment_charge(payment=payment)
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


def _payment_declined(*, payment: Payment, error: gateway.CardDeclined) -> Payment:
    """Records a declined (or authentication-needing) charge; nothing is credited."""
    if error.payment_intent:
        applied = payment_intent_apply(intent=error.payment_intent, decline=error)
        if applied is not None:
            return applied
    status = Payment.Status.REQUIRES_ACTION if error.code == "authentication_required" else Payment.Status.FAILED
    _payment_mark(payment, status=status, failure_code=error.code[:100], failure_message=str(error)[:500])
    payment.refresh_from_db()
    return payment


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
    """Our Payment for this PaymentIntent: by its id, else by the payment id in its metadata (every payment this
    instance makes has its row before the charge), else, for a charge of ours that has no row (made before rows
    came first), a row made from its metadata once the amount Stripe took is checked to pay for those credits."""
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
            if str(metadata.get("user_id") or payment.user_id) != str(payment.user_id):
                raise PaymentMismatch(f"PaymentIntent {intent_id} names payment {payment.pk} of another account.")
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
    user = get_user_model().objects.filter(pk=int(metadata["user_id"])).first()
    if user is None:
        return None
    # Metadata is only what was written on the charge; the credits are what the amount Stripe took pays for.
    amount = int(intent.get("amount") or 0)
    claimed = int(metadata["credits_micro"])
    quote = money.topup_quote(claimed)
    if claimed <= 0 or quote.charge_cents > amount:
        raise PaymentMismatch(
            f"PaymentIntent {intent_id} claims {money.format_credits(claimed)} credits, which cost "
            f"{money.format_money(quote.charge_cents, quote.currency)}, for "
            f"{money.format_money(amount, str(intent.get('currency') or quote.currency))}: not credited."
        )
    kind = metadata.get("kind") if metadata.get("kind") in Payment.Kind.values else Payment.Kind.TOPUP
    card = _card_of(intent)
    payment, _ = Payment.objects.get_or_create(
        stripe_payment_intent_id=intent_id,
        defaults={
            "user": user,
            "kind": kind,
            "credits_micro": claimed,
            "price_cents": quote.price_cents,
            "fee_cents": max(amount - quote.price_cents, 0),
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
    status, expected_cents, expected_currency = Payment.objects.values_list("status", "amount_cents", "currency").get(
        pk=payment.pk
    )
    if status == Payment.Status.SUCCEEDED:
        return False
    if amount_cents < expected_cents or (currency and currency.lower() != expected_currency.lower()):
        mismatch = (
            f"Payment {payment.pk} expected {expected_cents} {expected_currency}, Stripe reports "
            f"{amount_cents} {currency}: not credited."
        )
        # Flagged for support (the admin lists it); the wallet gets nothing until someone looks.
        Payment.objects.filter(pk=payment.pk).update(review_reason=mismatch[:500])
        raise PaymentMismatch(mismatch)
    with transaction.atomic():
        locked = Payment.objects.select_for_update().select_related("user").get(pk=payment.pk)
        if locked.status == Payment.Status.SUCCEEDED:
            return False
        _ledger_post(
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
        _commission_handover(COMMISSION_AWARD_TASK, locked)
    payment.refresh_from_db()
    return True


def _commission_handover(task_name: str, payment: Payment) -> None:
    """Affiliate commission is the affiliates app's business (it imports billing, never the other way): after
    this transaction commits, its task is sent by name with the payment id. The referrer's commission can never
    cost the buyer their credits, and the affiliates task locks the payment row, so an award and a reversal of
    one payment apply in the order their payments changed."""
    payment_id = payment.pk
    transaction.on_commit(lambda: task_enqueue(signature(task_name), payment_id))


# --- Human checkout ----------------------------------------------------------------------------------------


def checkout_start(*, user, credits_micro: int, success_url: str, cancel_url: str) -> str:
    """A Stripe Checkout Session for `credits_micro` (plus the fee); returns the URL to send the buyer to.
    `success_url` may hold {CHECKOUT_SESSION_ID}."""
    _require_stripe()
    topup_amount_check(credits_micro)
    customer_id = customer_ensure(user=user)
    quote = money.topup_quote(credits_micro)
    payment = checkout_payment_create(user=user, quote=quote)  # committed before Stripe hears of it
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
            metadata=_payment_metadata(payment),
            success_url=success_url,
            cancel_url=cancel_url,
            idempotency_key=payment.stripe_idempotency_key,
        )
    except gateway.GatewayError as exc:
        _payment_mark(payment, status=Payment.Status.FAILED, failure_code="stripe_error", failure_message=str(exc))
        raise
    Payment.objects.filter(pk=payment.pk).update(stripe_checkout_session_id=session["id"])
    return session["url"]


def checkout_payment_create(*, user, quote: money.TopupQuote) -> Payment:
    return payment_open(
        user=user, kind=Payment.Kind.CHECKOUT, quote=quote, idempotency_key=f"checkout:{user.pk}:{uuid.uuid4().hex}"
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
    _commission_handover(COMMISSION_REVERSE_TASK, payment)


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
