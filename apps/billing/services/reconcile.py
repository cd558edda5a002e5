"""The reconciler (beat): every payment still in flight after a while is brought to how it ended at Stripe."""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.billing import money
from apps.billing import stripe_gateway as gateway
from apps.billing.models import BillingProfile, Payment, PaymentMethod
from apps.billing.services.autotopup import _autotopup_charge
from apps.billing.services.payments import _payment_mark, checkout_session_apply, payment_intent_apply

logger = logging.getLogger(__name__)


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
