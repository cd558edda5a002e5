"""What billing tells an account on its own: the low-balance notice (email and the account's webhook), and the
emails other layers send through `_email`."""

import logging
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from apps.billing import money
from apps.billing.models import BillingEvent, BillingProfile, Wallet
from apps.billing.services.customers import billing_profile_get
from apps.billing.services.errors import InvalidBillingRequest
from apps.billing.services.ledger import wallet_get
from kiwiwhale.lib.safe_fetch import FetchError, safe_request

logger = logging.getLogger(__name__)


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
            "url": _absolute(reverse("billing")),
        },
    )
    if profile.low_balance_webhook_url:
        _webhook_post(
            profile.low_balance_webhook_url,
            {
                "event": "low_balance",
                "credits": money.micro_to_json(wallet.balance_micro),
                "threshold_credits": money.micro_to_json(threshold),
                "topup": {"endpoint": "/api/v1/agent_topup.php", "billing_url": _absolute(reverse("billing"))},
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
