"""Stripe customers and the signed links sent to a card holder; helpers every Stripe-facing layer shares."""

from django.conf import settings
from django.core import signing
from django.urls import reverse

from apps.billing import stripe_gateway as gateway
from apps.billing.models import BillingProfile, Payment, PaymentMethod
from apps.billing.services.errors import BillingNotFound, PaymentMethodRequired


def _require_stripe() -> None:
    if not gateway.enabled():
        raise gateway.BillingDisabled()


def billing_profile_get(*, user) -> BillingProfile:
    profile, _ = BillingProfile.objects.get_or_create(user=user)
    return profile


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
