"""The reconciler (beat): every payment still in flight after a while is brought to how it ended at Stripe."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from apps.billing import stripe_gateway as gateway
from apps.billing.models import Payment
from apps.billing.services.autotopup import _autotopup_charge
from apps.billing.services.errors import PaymentMismatch
from apps.billing.services.payments import _payment_mark, checkout_session_apply, payment_charge, payment_intent_apply

logger = logging.getLogger(__name__)

BATCH = 200
# Stripe keeps an idempotency key for 24 hours: past that, sending the request again could charge twice.
RESEND_WITHIN = timedelta(hours=23)


def payments_reconcile(*, older_than_seconds: int = 600) -> int:
    """Payments still in flight after a while (a lost webhook, a lost answer, a crash between the charge and its
    answer): asks Stripe how each one ended, oldest first, every one of them (in batches). A charge whose answer
    never came back is sent again as it was stored (the same card, amount and idempotency key), so Stripe answers
    with the first charge if there was one. Returns how many were looked at."""
    if not gateway.enabled():
        return 0
    now = timezone.now()
    stale = Payment.objects.filter(
        status__in=Payment.IN_FLIGHT, created_at__lt=now - timedelta(seconds=older_than_seconds)
    ).order_by("created_at", "id")
    looked = 0
    page = stale
    while batch := list(page.select_related("user")[:BATCH]):
        for payment in batch:
            looked += 1
            payment_reconcile(payment=payment, now=now)
        last = batch[-1]  # keyset: the next batch starts after the last one seen, whatever became of it
        page = stale.filter(Q(created_at__gt=last.created_at) | Q(created_at=last.created_at, id__gt=last.pk))
    return looked


def payment_reconcile(*, payment: Payment, now=None) -> None:
    """Brings one in-flight payment to how it ended at Stripe; a Stripe error leaves it for the next run."""
    now = now or timezone.now()
    try:
        if payment.stripe_payment_intent_id:
            payment_intent_apply(intent=gateway.payment_intent_retrieve(payment.stripe_payment_intent_id))
        elif payment.kind == Payment.Kind.CHECKOUT and payment.stripe_checkout_session_id:
            checkout_session_apply(session=gateway.checkout_session_retrieve(payment.stripe_checkout_session_id))
        elif payment.kind in (Payment.Kind.TOPUP, Payment.Kind.AUTOTOPUP):
            _charge_again(payment, now=now)
        elif payment.created_at < now - timedelta(days=1):
            _payment_mark(payment, status=Payment.Status.CANCELED, failure_message="Never reached Stripe.")
    except gateway.GatewayError:
        logger.warning("Reconciling payment %s failed; next run tries again", payment.pk, exc_info=True)
    except PaymentMismatch:
        logger.error("Payment %s does not match what Stripe reports; flagged for review", payment.pk, exc_info=True)
    payment.refresh_from_db()
    if payment.status == Payment.Status.REQUIRES_ACTION and payment.created_at < now - timedelta(
        seconds=settings.BILLING_LINK_MAX_AGE_SECONDS
    ):
        # Its link has expired: an auto top-up waiting for the holder forever would block the next one.
        _payment_mark(payment, status=Payment.Status.CANCELED, failure_message="Not confirmed in time.")


def _charge_again(payment: Payment, *, now) -> None:
    """A charge with no answer from Stripe: the same request again, or given up once its key may have expired."""
    if not payment.stripe_idempotency_key or not payment.stripe_payment_method_id:
        # Made before payments stored their card and key: nothing can be sent again safely.
        _payment_mark(payment, status=Payment.Status.CANCELED, failure_message="Stripe could not be reached.")
    elif payment.created_at < now - RESEND_WITHIN:
        _payment_mark(payment, status=Payment.Status.CANCELED, failure_message="Stripe could not be reached.")
    elif payment.kind == Payment.Kind.AUTOTOPUP:
        _autotopup_charge(payment=payment)  # its events and emails, as on the first attempt
    else:
        payment_charge(payment=payment)
