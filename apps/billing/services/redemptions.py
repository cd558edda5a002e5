"""Redemption codes: made in batches by an admin, redeemed once per code and account for credits."""

import hashlib
import secrets

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from apps.billing.models import LedgerEntry, Redemption, RedemptionBatch, RedemptionCode
from apps.billing.services.errors import InvalidBillingRequest, RateLimited, RedemptionRefused
from apps.billing.services.ledger import _ledger_post
from kiwiwhale.lib.ratelimit import rate_limit_hit

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed without mistakes
CODE_GROUPS, CODE_GROUP_LENGTH = 4, 5  # 20 characters of 5 bits = 100 bits: not guessable


def _code_normalize(raw: str) -> str:
    return "".join(ch for ch in (raw or "").upper() if ch.isalnum())


def _code_hash(normalized: str) -> str:
    return hashlib.sha256(f"kiwiwhale-code:{normalized}".encode()).hexdigest()


def redemption_batch_create(
    *, name: str, credits_micro: int, count: int, max_uses: int = 1, expires_at=None, created_by=None
) -> tuple[RedemptionBatch, list[str]]:
    """Makes `count` codes; returns them in clear this once (only their hashes are kept)."""
    if credits_micro <= 0 or not 1 <= count <= 10_000 or max_uses < 1:
        raise InvalidBillingRequest("A batch has 1 to 10000 codes worth more than 0 credits, each used once or more.")
    codes = []
    with transaction.atomic():
        batch = RedemptionBatch.objects.create(
            name=name, credits_micro=credits_micro, max_uses=max_uses, expires_at=expires_at, created_by=created_by
        )
        rows = []
        for _ in range(count):
            raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_GROUPS * CODE_GROUP_LENGTH))
            codes.append("-".join(raw[i : i + CODE_GROUP_LENGTH] for i in range(0, len(raw), CODE_GROUP_LENGTH)))
            rows.append(RedemptionCode(batch=batch, code_hash=_code_hash(raw), hint=raw[-4:]))
        RedemptionCode.objects.bulk_create(rows)
    return batch, codes


def code_redeem(*, user, code: str, client_ip: str = "") -> Redemption:
    """Adds a code's credits to the account's wallet: one ledger entry per (code, account). Attempts are
    rate-limited per account and per client address, so codes cannot be found by trying."""
    for scope, ident, rate in (
        ("redeem-account", str(user.pk), settings.RATE_REDEEM_ACCOUNT),
        ("redeem-ip", client_ip, settings.RATE_REDEEM_IP),
    ):
        if ident:
            wait = rate_limit_hit(scope, ident, rate=rate)
            if wait:
                raise RateLimited(wait)
    normalized = _code_normalize(code)
    found = (
        RedemptionCode.objects.select_related("batch").filter(code_hash=_code_hash(normalized)).first()
        if normalized
        else None
    )
    if found is None:
        raise RedemptionRefused("This code is not valid.", code="invalid_code")
    batch = found.batch
    if batch.disabled or batch.is_expired():
        raise RedemptionRefused("This code has expired.", code="code_expired")
    try:
        with transaction.atomic():
            if Redemption.objects.filter(code=found, user=user).exists():
                raise RedemptionRefused("You have already redeemed this code.", code="code_already_redeemed")
            if not RedemptionCode.objects.filter(pk=found.pk, uses__lt=batch.max_uses).update(uses=F("uses") + 1):
                raise RedemptionRefused("This code has been used up.", code="code_used_up")
            entry = _ledger_post(
                user=user,
                amount_micro=batch.credits_micro,
                kind=LedgerEntry.Kind.REDEMPTION,
                idempotency_key=f"redeem:{found.pk}:{user.pk}",
                reference=f"code …{found.hint}",
                description=f"Redemption code ({batch.name})",
            )
            return Redemption.objects.create(code=found, user=user, entry=entry)
    except IntegrityError as exc:  # the same account redeeming the same code twice at once
        raise RedemptionRefused("You have already redeemed this code.", code="code_already_redeemed") from exc
