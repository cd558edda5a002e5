"""Saving, confirming and removing cards. Sits above auto top-up: removing the last card switches it off."""

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from apps.billing import stripe_gateway as gateway
from apps.billing.models import PaymentMethod
from apps.billing.services.autotopup import _autotopup_switch_off
from apps.billing.services.customers import (
    _require_stripe,
    _stripe_get,
    billing_profile_get,
    customer_ensure,
    setup_link_token,
    stripe_ref_id,
)
from apps.billing.services.errors import BillingNotFound, InvalidBillingRequest, PaymentFailed


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
