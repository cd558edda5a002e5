"""Auto top-up: settings, the charge when a wallet falls below its trigger (at most one in flight per account),
caps, declines and what the account hears of each outcome."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from apps.billing import money
from apps.billing import stripe_gateway as gateway
from apps.billing.models import BillingEvent, BillingProfile, Payment, PaymentMethod, Wallet
from apps.billing.services.customers import _require_stripe, action_path, billing_profile_get
from apps.billing.services.errors import InvalidBillingRequest, PaymentMethodRequired
from apps.billing.services.ledger import _enqueue, wallet_get
from apps.billing.services.notices import _absolute, _email
from apps.billing.services.payments import payment_charge


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
    billing_profile_get(user=user)
    with transaction.atomic():
        # One lock order everywhere: the wallet, then the profile (the ledger writer locks the wallet first and
        # may then touch the profile; the opposite order here could deadlock with it).
        wallet = Wallet.objects.select_for_update().get(pk=wallet_get(user=user).pk)
        profile = BillingProfile.objects.select_for_update().get(user=user)
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
        _wallet_trigger_set(wallet, profile)
    return profile


def autotopup_wallet_sync(*, user) -> None:
    """After the profile was changed elsewhere (the admin): the wallet's copy of the trigger follows it."""
    with transaction.atomic():
        wallet = Wallet.objects.select_for_update().get(pk=wallet_get(user=user).pk)
        _wallet_trigger_set(wallet, BillingProfile.objects.select_for_update().get(user=user))


def _wallet_trigger_set(wallet: Wallet, profile: BillingProfile) -> None:
    """The ledger writer reads the trigger from the wallet row it locks; it is a copy of the profile's (locked)."""
    trigger = profile.autotopup_trigger_micro if profile.autotopup_enabled else None
    Wallet.objects.filter(pk=wallet.pk).update(autotopup_trigger_micro=trigger)
    if trigger is not None and wallet.balance_micro < trigger:
        transaction.on_commit(lambda: _enqueue("autotopup_run", wallet.pk))


def _autotopup_switch_off(*, user, reason: str) -> bool:
    """Switches auto top-up off (inside the caller's transaction). True if it was on."""
    Wallet.objects.select_for_update().filter(user=user).first()  # the wallet before the profile, as everywhere
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
                # The claim: the card is fixed now, so a retry charges this card and no other.
                payment = Payment.objects.create(
                    user=user,
                    kind=Payment.Kind.AUTOTOPUP,
                    credits_micro=1,
                    price_cents=1,
                    fee_cents=0,
                    amount_cents=1,
                    stripe_payment_method_id=card.stripe_payment_method_id,
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
                stripe_idempotency_key=f"autotopup:{payment.pk}",
            )
    if capped is not None:
        label, cap, since = capped
        _autotopup_cap_reached(user=user, label=label, cap_micro=cap, since=since)
        return None
    payment.refresh_from_db()  # committed with its card, amount and key: Stripe is asked only now
    return _autotopup_charge(payment=payment)


def _autotopup_charge(*, payment: Payment) -> Payment:
    """Charges a committed auto top-up (first time or the reconciler's retry: the same card, the same key)."""
    try:
        payment = payment_charge(payment=payment)
    except gateway.GatewayError as exc:
        # The outcome is unknown: the payment stays in flight and the reconciler sends the same request again.
        BillingEvent.objects.create(
            user=payment.user, kind=BillingEvent.Kind.AUTOTOPUP_ERROR, payment=payment, message=f"Stripe: {exc}"[:500]
        )
        return payment
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
        Wallet.objects.select_for_update().filter(user=payment.user).first()  # the wallet before the profile
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
            context={"limit": limit, "reason": reason, "url": _absolute(reverse("billing"))},
        )


def _autotopup_cap_reached(*, user, label: str, cap_micro: int, since) -> None:
    # One event per cap and period, not one per hold.
    kind = BillingEvent.Kind.AUTOTOPUP_CAP_REACHED
    message = f"The {label} auto top-up cap of {money.format_credits(cap_micro)} credits is reached."
    if not BillingEvent.objects.filter(user=user, kind=kind, message=message, created_at__gte=since).exists():
        BillingEvent.objects.create(user=user, kind=kind, message=message)
