"""The one wrapper around the official `stripe` library: every call to Stripe goes through here.

Objects come back as plain dicts (the shapes of Stripe's API reference), so services and webhook handlers read
one kind of data whichever path brought it. Errors come back as our exceptions: `CardDeclined` (the bank said
no, or the card needs its holder), `GatewayError` (anything else: network, configuration, Stripe itself), and
`BillingDisabled` when no key is set. Calls never run inside a database transaction that holds locks.

The code is written for real Stripe; tests point it at localstripe through STRIPE_API_BASE.
"""

import json
import logging
import time
from functools import lru_cache

import stripe
from django.conf import settings

logger = logging.getLogger(__name__)


class BillingDisabled(Exception):
    def __init__(self, message: str = "Payments are not set up on this instance (no Stripe keys)."):
        super().__init__(message)


class GatewayError(Exception):
    """Stripe could not be reached or refused the request for a reason that is not the card's."""


class CardDeclined(Exception):
    """The card was declined, or needs its holder (code `authentication_required`)."""

    def __init__(self, message: str, *, code: str, payment_intent: dict | None = None):
        super().__init__(message)
        self.code = code or "card_declined"
        self.payment_intent = payment_intent


class NotFound(GatewayError):
    pass


def enabled() -> bool:
    return bool(settings.STRIPE_ENABLED and settings.STRIPE_SECRET_KEY)


def _client() -> stripe.StripeClient:
    if not enabled():
        raise BillingDisabled()
    return _client_for(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, settings.STRIPE_MAX_NETWORK_RETRIES)


@lru_cache(maxsize=4)
def _client_for(secret_key: str, api_base: str, retries: int) -> stripe.StripeClient:
    base = {"api": api_base} if api_base else None
    return stripe.StripeClient(secret_key, base_addresses=base, max_network_retries=retries)


def _call(method, *args, **kwargs) -> dict:
    try:
        result = method(*args, **kwargs)
    except stripe.CardError as exc:
        error = exc.error
        intent = getattr(error, "payment_intent", None) if error is not None else None
        raise CardDeclined(
            exc.user_message or str(exc._message or "The card was declined."),
            code=(getattr(error, "code", None) if error is not None else None) or exc.code or "card_declined",
            payment_intent=(intent.to_dict() if hasattr(intent, "to_dict") else dict(intent)) if intent else None,
        ) from exc
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404:
            raise NotFound(str(exc._message or "Not found at Stripe.")) from exc
        raise GatewayError(str(exc._message or exc)) from exc
    except stripe.StripeError as exc:
        logger.warning("Stripe call failed: %s", exc)
        raise GatewayError(str(exc._message or exc) or "Stripe could not be reached.") from exc
    return result.to_dict() if hasattr(result, "to_dict") else result


def _options(idempotency_key: str | None) -> dict:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


# --- Customers and cards -----------------------------------------------------------------------------------


def customer_create(*, email: str, name: str, user_id: int, idempotency_key: str) -> dict:
    params = {"metadata": {"user_id": str(user_id)}}
    if email:
        params["email"] = email
    if name:
        params["name"] = name
    return _call(_client().v1.customers.create, params=params, options=_options(idempotency_key))


def customer_default_payment_method_set(*, customer_id: str, payment_method_id: str | None) -> dict:
    params = {"invoice_settings": {"default_payment_method": payment_method_id or ""}}
    return _call(_client().v1.customers.update, customer_id, params=params)


def setup_intent_create(*, customer_id: str, user_id: int) -> dict:
    params = {
        "customer": customer_id,
        "usage": "off_session",
        "payment_method_types": ["card"],
        "metadata": {"user_id": str(user_id)},
    }
    return _call(_client().v1.setup_intents.create, params=params)


def setup_intent_retrieve(setup_intent_id: str) -> dict:
    return _call(_client().v1.setup_intents.retrieve, setup_intent_id)


def payment_method_retrieve(payment_method_id: str) -> dict:
    return _call(_client().v1.payment_methods.retrieve, payment_method_id)


def payment_method_attach(*, payment_method_id: str, customer_id: str) -> dict:
    return _call(_client().v1.payment_methods.attach, payment_method_id, params={"customer": customer_id})


def payment_method_detach(payment_method_id: str) -> dict:
    return _call(_client().v1.payment_methods.detach, payment_method_id)


# --- Payments ----------------------------------------------------------------------------------------------


def payment_intent_create_off_session(
    *,
    customer_id: str,
    payment_method_id: str,
    amount_cents: int,
    currency: str,
    metadata: dict,
    idempotency_key: str,
) -> dict:
    """Charges a saved card with nobody present. Raises CardDeclined on a decline or `authentication_required`."""
    params = {
        "amount": amount_cents,
        "currency": currency,
        "customer": customer_id,
        "payment_method": payment_method_id,
        "payment_method_types": ["card"],
        "off_session": True,
        "confirm": True,
        "metadata": {key: str(value) for key, value in metadata.items()},
    }
    return _call(_client().v1.payment_intents.create, params=params, options=_options(idempotency_key))


def payment_intent_retrieve(payment_intent_id: str) -> dict:
    return _call(_client().v1.payment_intents.retrieve, payment_intent_id)


def checkout_session_create(
    *,
    customer_id: str,
    amount_cents: int,
    currency: str,
    product_name: str,
    product_description: str,
    metadata: dict,
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
) -> dict:
    metadata = {key: str(value) for key, value in metadata.items()}
    params = {
        "mode": "payment",
        "customer": customer_id,
        "client_reference_id": metadata.get("user_id", ""),
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": currency,
                    "unit_amount": amount_cents,
                    "product_data": {"name": product_name, "description": product_description},
                },
            }
        ],
        "payment_method_types": ["card"],
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    return _call(_client().v1.checkout.sessions.create, params=params, options=_options(idempotency_key))


def checkout_session_retrieve(session_id: str) -> dict:
    return _call(_client().v1.checkout.sessions.retrieve, session_id)


def refund_create(*, payment_intent_id: str, amount_cents: int | None, idempotency_key: str) -> dict:
    params = {"payment_intent": payment_intent_id}
    if amount_cents:
        params["amount"] = amount_cents
    return _call(_client().v1.refunds.create, params=params, options=_options(idempotency_key))


def charge_retrieve(charge_id: str) -> dict:
    return _call(_client().v1.charges.retrieve, charge_id)


# --- Webhooks ----------------------------------------------------------------------------------------------


class BadSignature(Exception):
    pass


def event_verify(*, payload: bytes, signature_header: str) -> dict:
    """The event as a dict, if `Stripe-Signature` proves it came from Stripe (with our endpoint's secret)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise BillingDisabled("The Stripe webhook secret (STRIPE_WEBHOOK_SECRET) is not set.")
    tolerance = stripe.Webhook.DEFAULT_TOLERANCE
    try:
        # The library refuses signatures older than the tolerance; one from the future is refused below.
        stripe.Webhook.construct_event(payload, signature_header, secret, tolerance=tolerance)
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError) as exc:
        raise BadSignature(str(exc)) from exc
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise BadSignature("Not a Stripe event.")
    latest = time.time() + tolerance
    if _signature_timestamp(signature_header) > latest:
        raise BadSignature("The signature's timestamp is in the future.")
    created = event.get("created")
    if isinstance(created, int | float) and not isinstance(created, bool) and created > latest:
        raise BadSignature("The event's creation time is in the future.")
    return event


def _signature_timestamp(signature_header: str) -> int:
    # `Stripe-Signature: t=1700000000,v1=…`; construct_event has already refused a header without a valid `t`.
    for item in signature_header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            return int(value)
    return 0
