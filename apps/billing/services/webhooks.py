"""Stripe's webhook events: verified, stored once by id, dispatched by type to the layer below that owns them;
each event's handling status and error stay on its row for support."""

import logging
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.billing import stripe_gateway as gateway
from apps.billing.models import BillingProfile, PaymentMethod, StripeEvent
from apps.billing.services.autotopup import _autotopup_switch_off
from apps.billing.services.cards import payment_method_confirm
from apps.billing.services.errors import PaymentMismatch, WebhookHandlingFailed
from apps.billing.services.payments import (
    _payment_for_charge,
    checkout_failed,
    checkout_session_apply,
    payment_intent_apply,
    payment_reversal_apply,
)

logger = logging.getLogger(__name__)


# A redelivery of an event in one of these is not handled again (the admin's "process again" still can).
FINAL_STATUSES = (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED, StripeEvent.Status.REFUSED)


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
    if not created and record.status in FINAL_STATUSES:
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
    except PaymentMismatch as exc:
        # Stripe's report does not match what was paid (an amount, or metadata claiming more credits than the
        # amount buys): nothing is credited, the event is marked for support, and Stripe is told it arrived (a
        # redelivery would be refused again).
        logger.error("Stripe event %s (%s) refused: %s", event.event_id, event.type, exc)
        _event_mark(event, StripeEvent.Status.REFUSED, error=str(exc))
        return
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
