"""The affiliate program: referral codes and clicks, attribution at sign-up, commissions and payouts.

Commission has its own append-only ledger (CommissionEntry), separate from spendable credits; every movement goes
through `_commission_post` under a unique idempotency key. grep `commission_` / `payout_` to see them all.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.affiliates.models import (
    AffiliateAccount,
    Attribution,
    Commission,
    CommissionEntry,
    Payout,
    PayoutEvent,
    ReferralCode,
)
from apps.billing import models as billing_models
from apps.billing import money
from apps.billing.services import credits_from_commission
from kiwiwhale.lib.ratelimit import rate_limit_hit

logger = logging.getLogger(__name__)

COOKIE_NAME = "kw_ref"
COOKIE_SALT = "kiwiwhale.referral"


class AffiliateError(Exception):
    """A request the program refuses; the message is safe to show."""


# --- Codes, clicks, attribution -------------------------------------------------------------------------------


def referral_code_get(*, user) -> ReferralCode:
    code = ReferralCode.objects.filter(user=user).first()
    while code is None:
        try:
            with transaction.atomic():
                code = ReferralCode.objects.create(user=user)
        except IntegrityError:  # a code collision (or a concurrent create): look again, else draw a new code
            code = ReferralCode.objects.filter(user=user).first()
    return code


def referral_click(*, code: str, ip: str, user=None) -> ReferralCode | None:
    """Counts a visit through a referral link: once per IP and code per hour, never the owner's own visits."""
    referral = ReferralCode.objects.filter(code=code.upper()).first()
    if referral is None or (user is not None and user.is_authenticated and user.pk == referral.user_id):
        return None
    if not rate_limit_hit("referral-click", f"{ip}:{referral.code}", rate=settings.AFFILIATE_CLICK_RATE):
        ReferralCode.objects.filter(pk=referral.pk).update(clicks=models.F("clicks") + 1)
    return referral


def referral_cookie_value(code: str) -> str:
    return f"{code}:{int(time.time())}"


def referral_code_from_cookie(request) -> str | None:
    """The code of a referral cookie still inside the attribution window (signed, so it can't be forged)."""
    value = request.get_signed_cookie(
        COOKIE_NAME, default=None, salt=COOKIE_SALT, max_age=settings.AFFILIATE_COOKIE_DAYS * 86400
    )
    return value.split(":", 1)[0] if value else None


def referral_attribute(*, user, code: str, source: str) -> Attribution | None:
    """Attributes a new account to a code's owner, once; refuses self-referral. None when nothing applies."""
    referral = ReferralCode.objects.select_related("user").filter(code=(code or "").strip().upper()).first()
    if referral is None or Attribution.objects.filter(referred=user).exists():
        return None
    if referral.user_id == user.pk or _same_person(referral.user, user):
        logger.info("Self-referral refused: %s on %s", user.pk, referral.code)
        return None
    try:
        with transaction.atomic():
            return Attribution.objects.create(referred=user, referrer=referral.user, code=referral.code, source=source)
    except IntegrityError:
        return None  # attributed by a concurrent request: the first one stands


def referral_attribute_from_request(*, request, user) -> Attribution | None:
    """At a browser sign-up: the referral cookie, if one is set and still inside the window."""
    code = referral_code_from_cookie(request) if request is not None else None
    return referral_attribute(user=user, code=code, source=Attribution.Source.COOKIE) if code else None


def _same_person(referrer, user) -> bool:
    def mailbox(email: str) -> str:
        local, _, domain = (email or "").lower().partition("@")
        return f"{local.split('+', 1)[0].replace('.', '')}@{domain}" if domain else ""

    return bool(mailbox(referrer.email)) and mailbox(referrer.email) == mailbox(user.email)


# --- The commission ledger ------------------------------------------------------------------------------------


def affiliate_account_get(*, user) -> AffiliateAccount:
    account, _ = AffiliateAccount.objects.get_or_create(user=user)
    return account


def _commission_post(
    *,
    account_id: int,
    bucket: str,
    amount_micro: int,
    kind: str,
    key: str,
    reference: str = "",
    by=None,
    allow_negative: bool = False,
) -> CommissionEntry:
    """The one writer of commission entries; runs inside the caller's transaction, idempotent by key."""
    if bucket not in AffiliateAccount.BUCKETS:
        raise ValueError(bucket)
    account = AffiliateAccount.objects.select_for_update().get(pk=account_id)
    existing = CommissionEntry.objects.filter(idempotency_key=key).first()
    if existing is not None:
        return existing
    field = f"{bucket}_micro"
    new_value = getattr(account, field) + amount_micro
    if new_value < 0 and not allow_negative:
        raise AffiliateError(
            f"Only {money.format_credits(getattr(account, field))} credits of commission are {bucket}."
        )
    AffiliateAccount.objects.filter(pk=account.pk).update(**{field: new_value, "updated_at": timezone.now()})
    return CommissionEntry.objects.create(
        account=account,
        bucket=bucket,
        amount_micro=amount_micro,
        kind=kind,
        idempotency_key=key,
        reference=reference,
        created_by=by,
    )


def _commission_move(*, account_id, source: str, target: str, amount_micro: int, kind: str, key: str, **extra):
    _commission_post(
        account_id=account_id, bucket=source, amount_micro=-amount_micro, kind=kind, key=f"{key}:{source}", **extra
    )
    _commission_post(
        account_id=account_id, bucket=target, amount_micro=amount_micro, kind=kind, key=f"{key}:{target}", **extra
    )


def commission_award(*, referred, payment_reference: str, net_micro: int, fingerprint: str = "") -> Commission | None:
    """The commission on one payment of a referred account (net credits bought), once per payment.

    None when the account was not referred, the commission period is over, or the card is the referrer's own.
    """
    attribution = Attribution.objects.select_related("referrer").filter(referred=referred).first()
    if attribution is None or net_micro <= 0:
        return None
    period_end = attribution.created_at + timedelta(days=30 * settings.AFFILIATE_COMMISSION_MONTHS)
    if timezone.now() > period_end:
        return None
    if fingerprint and fingerprint in payment_fingerprints(user=attribution.referrer):
        logger.info("Commission refused on %s: the referrer pays with the same card", payment_reference)
        return None
    rate = settings.AFFILIATE_COMMISSION_PERCENT
    amount = money.percent_of(net_micro, rate)
    if amount <= 0:
        return None
    account = affiliate_account_get(user=attribution.referrer)
    with transaction.atomic():
        commission, created = Commission.objects.get_or_create(
            payment_reference=payment_reference,
            defaults={
                "affiliate": account,
                "referred": referred,
                "base_micro": net_micro,
                "rate_percent": rate,
                "amount_micro": amount,
                "available_at": timezone.now() + timedelta(days=settings.AFFILIATE_HOLD_DAYS),
            },
        )
        if created:
            _commission_post(
                account_id=account.pk,
                bucket="pending",
                amount_micro=amount,
                kind=CommissionEntry.Kind.AWARD,
                key=f"aff:{payment_reference}:award",
                reference=payment_reference,
            )
    return commission


def commission_award_for_payment(*, payment_id: int) -> Commission | None:
    """The commission on a succeeded payment, handed over by billing's task after the credit committed.

    The payment row is locked, so a refund or dispute being applied to it waits or has already been applied:
    a payment whose credits were taken back earns nothing, and a reversal always finds the award it reverses.
    """
    with transaction.atomic():
        payment = (
            billing_models.Payment.objects.select_for_update()
            .select_related("user")
            .filter(pk=payment_id, status=billing_models.Payment.Status.SUCCEEDED)
            .first()
        )
        if payment is None or payment.clawed_back_micro:
            return None
        fingerprint = ""
        if payment.card_last4:
            cards = billing_models.PaymentMethod.objects.filter(user=payment.user, last4=payment.card_last4)
            fingerprint = cards.exclude(fingerprint="").values_list("fingerprint", flat=True).first() or ""
        return commission_award(
            referred=payment.user,
            payment_reference=payment.reference,
            net_micro=payment.credits_micro,
            fingerprint=fingerprint,
        )


def commission_reverse_for_payment(*, payment_id: int) -> bool:
    """Billing took a payment's credits back (refund, lost dispute): its commission goes too. True if reversed."""
    payment = billing_models.Payment.objects.filter(pk=payment_id).first()
    if payment is None or not payment.clawed_back_micro:
        return False
    return commission_reverse(payment_reference=payment.reference)


def commission_handovers_catch_up(*, days: int = 3) -> int:
    """Billing's handovers whose task was lost (broker down at the moment): succeeded payments of referred accounts
    with no commission yet are awarded, clawed-back payments whose commission stands are reversed. Both steps are
    idempotent, so a handover that did arrive changes nothing. Returns how many were caught up."""
    Payment = billing_models.Payment
    since = timezone.now() - timedelta(days=days)
    recent = Payment.objects.filter(succeeded_at__gte=since, status=Payment.Status.SUCCEEDED)
    referred = Attribution.objects.values("referred_id")
    caught = 0
    for payment in recent.filter(user_id__in=referred, clawed_back_micro=0).order_by("succeeded_at", "id"):
        if not Commission.objects.filter(payment_reference=payment.reference).exists():
            caught += commission_award_for_payment(payment_id=payment.pk) is not None
    standing = Commission.objects.exclude(status=Commission.Status.REVERSED)
    for payment in recent.filter(clawed_back_micro__gt=0).order_by("succeeded_at", "id"):
        if standing.filter(payment_reference=payment.reference).exists():
            caught += commission_reverse_for_payment(payment_id=payment.pk)
    return caught


def payment_fingerprints(*, user) -> set[str]:
    """Card fingerprints an account has paid with (to refuse commissions that go round in a loop)."""
    methods = billing_models.PaymentMethod.objects.filter(user=user).exclude(fingerprint="")
    return set(methods.values_list("fingerprint", flat=True))


def commissions_mature(*, now=None) -> int:
    """Pending commissions whose hold period has ended become available."""
    now = now or timezone.now()
    matured = 0
    for commission in Commission.objects.filter(status=Commission.Status.PENDING, available_at__lte=now)[:1000]:
        with transaction.atomic():
            changed = Commission.objects.filter(pk=commission.pk, status=Commission.Status.PENDING).update(
                status=Commission.Status.AVAILABLE
            )
            if changed:
                _commission_move(
                    account_id=commission.affiliate_id,
                    source="pending",
                    target="available",
                    amount_micro=commission.amount_micro,
                    kind=CommissionEntry.Kind.MATURE,
                    key=f"aff:{commission.payment_reference}:mature",
                    reference=commission.payment_reference,
                )
                matured += 1
    return matured


def commission_reverse(*, payment_reference: str) -> bool:
    """A refund or lost dispute of the source payment takes the commission back, once, pending or available.

    Available commission may go negative here when it was already converted or paid out: later commissions
    pay the debt first. True if this call reversed it.
    """
    with transaction.atomic():
        # Locked, so a concurrent maturing can't move it between reading its bucket and reversing it.
        commission = Commission.objects.select_for_update().filter(payment_reference=payment_reference).first()
        if commission is None or commission.status == Commission.Status.REVERSED:
            return False
        source = commission.status
        Commission.objects.filter(pk=commission.pk).update(
            status=Commission.Status.REVERSED, reversed_at=timezone.now()
        )
        _commission_post(
            account_id=commission.affiliate_id,
            bucket=source,
            amount_micro=-commission.amount_micro,
            kind=CommissionEntry.Kind.REVERSAL,
            key=f"aff:{payment_reference}:reversal",
            reference=payment_reference,
            allow_negative=True,
        )
    return True


# --- Turning commission into something: credits, or a payout ----------------------------------------------------


def commission_convert(*, user, amount_micro: int) -> int:
    """Converts available commission into spendable credits at once; returns the new wallet balance."""
    if amount_micro <= 0:
        raise AffiliateError("Convert more than zero credits.")
    account = affiliate_account_get(user=user)
    key = f"aff:convert:{uuid.uuid4()}"
    with transaction.atomic():
        _commission_move(
            account_id=account.pk,
            source="available",
            target="converted",
            amount_micro=amount_micro,
            kind=CommissionEntry.Kind.CONVERSION,
            key=key,
            reference=key,
        )
        entry = credits_from_commission(user=user, amount_micro=amount_micro, idempotency_key=key, reference=key)
    return entry.balance_after_micro


def payout_request(*, user, amount_micro: int, method: str) -> Payout:
    minimum = money.credits_to_micro(settings.AFFILIATE_PAYOUT_MIN_CREDITS)
    if amount_micro < minimum:
        raise AffiliateError(f"The minimum payout is {money.format_credits(minimum)} credits.")
    if not method.strip():
        raise AffiliateError("Say where to send the payout (e.g. 'PayPal: you@example.com').")
    account = affiliate_account_get(user=user)
    with transaction.atomic():
        payout = Payout.objects.create(affiliate=account, amount_micro=amount_micro, method=method.strip()[:300])
        _commission_move(
            account_id=account.pk,
            source="available",
            target="requested",
            amount_micro=amount_micro,
            kind=CommissionEntry.Kind.PAYOUT_REQUEST,
            key=f"aff:payout:{payout.pk}:request",
            reference=f"payout:{payout.pk}",
            by=user,
        )
        PayoutEvent.objects.create(payout=payout, action="requested", actor=user)
    return payout


def payout_approve(*, payout: Payout, by) -> bool:
    return _payout_transition(payout, [Payout.Status.REQUESTED], Payout.Status.APPROVED, by=by)


def payout_reject(*, payout: Payout, by, note: str = "") -> bool:
    """Rejecting returns the amount to available commission."""
    return _payout_close(
        payout,
        [Payout.Status.REQUESTED, Payout.Status.APPROVED],
        Payout.Status.REJECTED,
        bucket="available",
        kind=CommissionEntry.Kind.PAYOUT_REJECTED,
        by=by,
        note=note,
    )


def payout_mark_paid(*, payout: Payout, by, note: str = "") -> bool:
    return _payout_close(
        payout,
        [Payout.Status.APPROVED],
        Payout.Status.PAID,
        bucket="paid",
        kind=CommissionEntry.Kind.PAYOUT_PAID,
        by=by,
        note=note,
    )


def _payout_close(payout: Payout, sources: list[str], target: str, *, bucket: str, kind: str, by, note: str) -> bool:
    """Ends a payout: its amount leaves `requested` for `bucket`, once. True if this call ended it."""
    with transaction.atomic():
        if not _payout_transition(payout, sources, target, by=by, note=note):
            return False
        _commission_move(
            account_id=payout.affiliate_id,
            source="requested",
            target=bucket,
            amount_micro=payout.amount_micro,
            kind=kind,
            key=f"aff:payout:{payout.pk}:{target}",
            reference=f"payout:{payout.pk}",
            by=by,
        )
    return True


def _payout_transition(payout: Payout, sources: list[str], target: str, *, by, note: str = "") -> bool:
    with transaction.atomic():
        changed = Payout.objects.filter(pk=payout.pk, status__in=sources).update(
            status=target, decided_at=timezone.now(), decided_by=by, note=note[:300]
        )
        if changed:
            PayoutEvent.objects.create(payout=payout, action=target, actor=by, note=note[:300])
            payout.status = target
    return bool(changed)


# --- What an affiliate sees -------------------------------------------------------------------------------------


@dataclass
class AffiliateSummary:
    code: str
    clicks: int
    signups: int
    paying_referrals: int
    pending_micro: int
    available_micro: int
    requested_micro: int
    paid_micro: int
    converted_micro: int


def affiliate_summary(*, user) -> AffiliateSummary:
    code = referral_code_get(user=user)
    account = affiliate_account_get(user=user)
    signups = Attribution.objects.filter(referrer=user).count()
    paying = Commission.objects.filter(affiliate=account).values("referred").distinct().count()
    return AffiliateSummary(
        code=code.code,
        clicks=code.clicks,
        signups=signups,
        paying_referrals=paying,
        pending_micro=account.pending_micro,
        available_micro=account.available_micro,
        requested_micro=account.requested_micro,
        paid_micro=account.paid_micro,
        converted_micro=account.converted_micro,
    )


def affiliate_ledger_check() -> list[str]:
    """Each affiliate's cached buckets equal the sums of its entries; no bucket but `available` is negative."""
    problems = []
    sums = {
        (row["account"], row["bucket"]): row["total"]
        for row in CommissionEntry.objects.values("account", "bucket").annotate(total=Sum("amount_micro"))
    }
    for account in AffiliateAccount.objects.all():
        for bucket in AffiliateAccount.BUCKETS:
            cached = getattr(account, f"{bucket}_micro")
            if cached != sums.get((account.pk, bucket), 0):
                problems.append(
                    f"affiliate {account.pk} {bucket}: cached {cached}, entries {sums.get((account.pk, bucket), 0)}"
                )
            if bucket != "available" and cached < 0:
                problems.append(f"affiliate {account.pk} {bucket} is negative")
    return problems
