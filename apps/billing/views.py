"""The billing pages (/billing.php and /billing/…) and the Stripe webhook. Each view parses, calls one service,
renders; errors a person can fix come back as messages on /billing.php."""

import json
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.billing import forms, money
from apps.billing import stripe_gateway as gateway
from apps.billing.apis import ledger_csv_response
from apps.billing.models import BillingEvent, LedgerEntry, Payment, PaymentMethod
from apps.billing.services import (
    BillingError,
    RateLimited,
    WebhookHandlingFailed,
    action_link_read,
    autotopup_configure,
    billing_profile_get,
    checkout_return,
    checkout_start,
    code_redeem,
    low_balance_configure,
    payment_action_refresh,
    payment_method_confirm,
    payment_method_remove,
    payment_setup_start,
    setup_link_read,
    stripe_event_receive,
    stripe_ref_id,
    wallet_get,
)
from kiwiwhale.lib.ratelimit import client_ip

logger = logging.getLogger(__name__)

LEDGER_ROWS = 50


def _back(request, anchor: str = ""):
    return redirect(reverse("billing") + (f"#{anchor}" if anchor else ""))


def _error_text(exc: Exception) -> str:
    if isinstance(exc, gateway.BillingDisabled):
        return "Card payments are not set up on this instance."
    if isinstance(exc, gateway.GatewayError):
        return f"Stripe could not complete the request ({exc}). Nothing was charged; try again in a moment."
    return str(exc)


@login_required
def billing_page(request):
    user = request.user
    wallet = wallet_get(user=user)
    profile = billing_profile_get(user=user)
    packages = []
    for value in settings.CREDIT_PACKAGES:
        try:
            packages.append(money.topup_quote(money.credits_to_micro(value)))
        except money.InvalidAmount:
            logger.warning("CREDIT_PACKAGES holds %r, which is not a credit amount", value)
    context = {
        "stripe_enabled": gateway.enabled(),
        "wallet": wallet,
        "profile": profile,
        "packages": packages,
        "min_micro": money.setting_credits("TOPUP_MIN_CREDITS"),
        "max_micro": money.setting_credits("TOPUP_MAX_CREDITS"),
        "fee_percent": settings.STRIPE_FEE_PERCENT,
        "fee_fixed": money.format_money(settings.STRIPE_FEE_FIXED_CENTS, settings.BILLING_CURRENCY),
        "credit_price": money.format_money(money.credits_to_cents(money.MICRO), settings.BILLING_CURRENCY),
        "cards": PaymentMethod.objects.filter(user=user),
        "payments": Payment.objects.filter(user=user)[:50],
        "entries": LedgerEntry.objects.filter(wallet=wallet).order_by("-id")[:LEDGER_ROWS],
        "events": BillingEvent.objects.filter(user=user)[:20],
        "daily_cap_max": money.setting_credits("AUTOTOPUP_DAILY_CAP_CREDITS"),
        "monthly_cap_max": money.setting_credits("AUTOTOPUP_MONTHLY_CAP_CREDITS"),
    }
    return render(request, "billing/billing.html", context)


@login_required
@require_POST
def checkout_create(request):
    form = forms.BuyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the number of credits to buy.")
        return _back(request, "buy")
    success_url = request.build_absolute_uri(reverse("billing:checkout_success")) + "?session_id={CHECKOUT_SESSION_ID}"
    try:
        url = checkout_start(
            user=request.user,
            credits_micro=form.cleaned_data["credits"],
            success_url=success_url,
            cancel_url=request.build_absolute_uri(reverse("billing:checkout_cancel")),
        )
    except (BillingError, gateway.BillingDisabled, gateway.GatewayError) as exc:
        messages.error(request, _error_text(exc))
        return _back(request, "buy")
    return redirect(url)


@login_required
@require_GET
def checkout_success(request):
    session_id = request.GET.get("session_id", "")[:255]
    payment = Payment.objects.filter(user=request.user, stripe_checkout_session_id=session_id).first()
    if payment is None:
        raise Http404("No such checkout.")
    payment = checkout_return(user=request.user, session_id=session_id)
    return render(request, "billing/checkout_done.html", {"payment": payment, "canceled": False})


@login_required
@require_GET
def checkout_cancel(request):
    return render(request, "billing/checkout_done.html", {"payment": None, "canceled": True})


@login_required
@require_POST
def card_add(request):
    try:
        started = payment_setup_start(user=request.user)
    except (BillingError, gateway.BillingDisabled, gateway.GatewayError) as exc:
        messages.error(request, _error_text(exc))
        return _back(request, "cards")
    return redirect(started.setup_path)


@login_required
@require_POST
def card_remove(request):
    form = forms.CardRemoveForm(request.POST)
    card = PaymentMethod.objects.filter(user=request.user, pk=form.data.get("card_id") or 0).first()
    if not form.is_valid() or card is None:
        raise Http404("No such card.")
    try:
        payment_method_remove(user=request.user, payment_method=card)
    except (BillingError, gateway.GatewayError) as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"Removed {card}.")
    return _back(request, "cards")


def setup_page(request, token: str):
    """Where the card holder enters a card (Stripe Elements). The link is the key: agents have no login."""
    try:
        user_id, setup_intent_id = setup_link_read(token)
        intent = gateway.setup_intent_retrieve(setup_intent_id)
    except BillingError as exc:
        return render(request, "billing/link_invalid.html", {"message": str(exc)}, status=404)
    except (gateway.BillingDisabled, gateway.GatewayError) as exc:
        return render(request, "billing/link_invalid.html", {"message": _error_text(exc)}, status=503)
    card = None
    error = ""
    if intent.get("status") == "succeeded":
        try:
            card = payment_method_confirm(user=_user(user_id), setup_intent_id=setup_intent_id)
        except (BillingError, gateway.GatewayError) as exc:
            error = _error_text(exc)
    context = {
        "intent": intent,
        "card": card,
        "error": error,
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "stripe_js_url": settings.STRIPE_JS_URL,
    }
    response = render(request, "billing/setup.html", context)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def action_page(request, token: str):
    """Where the card holder confirms a charge their bank wants them for (3-D Secure)."""
    try:
        payment = action_link_read(token)
        payment = payment_action_refresh(payment=payment)
        intent = (
            gateway.payment_intent_retrieve(payment.stripe_payment_intent_id)
            if payment.status == Payment.Status.REQUIRES_ACTION and payment.stripe_payment_intent_id
            else None
        )
    except BillingError as exc:
        return render(request, "billing/link_invalid.html", {"message": str(exc)}, status=404)
    except (gateway.BillingDisabled, gateway.GatewayError) as exc:
        return render(request, "billing/link_invalid.html", {"message": _error_text(exc)}, status=503)
    method_id = ""
    if intent is not None and intent.get("status") == "requires_payment_method":
        # Off-session authentication failed: the holder confirms again with the same card, now present.
        error = intent.get("last_payment_error") or {}
        method_id = stripe_ref_id(intent.get("payment_method")) or stripe_ref_id(error.get("payment_method"))
    context = {
        "payment": payment,
        "intent": intent,
        "method_id": method_id,
        "amount": money.format_money(payment.amount_cents, payment.currency),
        "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
        "stripe_js_url": settings.STRIPE_JS_URL,
    }
    response = render(request, "billing/action.html", context)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def _user(user_id: int):
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        raise Http404("No such account.")
    return user


@login_required
@require_POST
def autotopup_update(request):
    form = forms.AutoTopupForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Check the auto top-up amounts: " + "; ".join(_form_errors(form)))
        return _back(request, "autotopup")
    data = form.cleaned_data
    try:
        autotopup_configure(
            user=request.user,
            enabled=data["enabled"],
            mode=data["mode"],
            trigger_micro=data["trigger_credits"] or 0,
            amount_micro=data.get("amount_credits"),
            target_micro=data.get("target_credits"),
            daily_cap_micro=data.get("daily_cap_credits"),
            monthly_cap_micro=data.get("monthly_cap_credits"),
        )
    except (BillingError, gateway.BillingDisabled) as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, "Auto top-up is on." if data["enabled"] else "Auto top-up is off.")
    return _back(request, "autotopup")


@login_required
@require_POST
def low_balance_update(request):
    form = forms.LowBalanceForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(_form_errors(form)))
        return _back(request, "low-balance")
    try:
        low_balance_configure(
            user=request.user,
            threshold_micro=form.cleaned_data["threshold_credits"],
            webhook_url=form.cleaned_data["webhook_url"],
        )
    except BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Low-balance notice saved.")
    return _back(request, "low-balance")


@login_required
@require_POST
def redeem(request):
    form = forms.RedeemForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Type the code.")
        return _back(request, "redeem")
    try:
        redemption = code_redeem(user=request.user, code=form.cleaned_data["code"], client_ip=client_ip(request))
    except (BillingError, RateLimited) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Added {money.format_credits(redemption.entry.amount_micro)} credits.")
    return _back(request, "redeem")


@login_required
@require_GET
def usage_csv(request):
    entries = LedgerEntry.objects.filter(wallet__user=request.user).order_by("-id")
    return ledger_csv_response(entries, filename="kiwiwhale-usage.csv")


@login_required
@require_GET
def receipt(request, pk: int):
    payment = Payment.objects.filter(user=request.user, pk=pk).first()
    if payment is None:
        raise Http404("No such receipt.")
    context = {
        "payment": payment,
        "price": money.format_money(payment.price_cents, payment.currency),
        "fee": money.format_money(payment.fee_cents, payment.currency),
        "amount": money.format_money(payment.amount_cents, payment.currency),
        "refunded": money.format_money(payment.refunded_cents, payment.currency),
    }
    return render(request, "billing/receipt.html", context)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Stripe's events: 400 when the signature is wrong, 200 once handled (or already handled), 500 when the
    handling failed (Stripe retries it later; the error is on the event's row in the admin)."""
    if not _is_json_object(request.body):
        # Stripe sends one event, a JSON object; the stripe library crashes on a signed array or scalar.
        return HttpResponseBadRequest("Not a Stripe event.")
    try:
        event = stripe_event_receive(payload=request.body, signature_header=request.headers.get("Stripe-Signature", ""))
    except gateway.BadSignature:
        return HttpResponseBadRequest("Bad signature.")
    except gateway.BillingDisabled as exc:
        return HttpResponse(str(exc), status=503)
    except WebhookHandlingFailed:
        return JsonResponse({"received": True, "handled": False}, status=500)
    return JsonResponse({"received": True, "status": event.status})


def _is_json_object(payload: bytes) -> bool:
    try:
        return isinstance(json.loads(payload), dict)
    except (ValueError, RecursionError):
        return False


def _form_errors(form) -> list[str]:
    return [
        " ".join(errors) if name == "__all__" else f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()
    ]
