"""Every movement of credits goes through `_ledger_post`. grep `credits_` / `hold_` to see them all."""

from dataclasses import dataclass

from django.db import models, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.billing import money
from apps.billing.models import Hold, LedgerEntry, Wallet


class InsufficientCredits(Exception):
    def __init__(self, *, required_micro: int, balance_micro: int):
        self.required_micro = required_micro
        self.balance_micro = balance_micro
        super().__init__(
            f"This needs {money.format_credits(required_micro)} credits; "
            f"the balance is {money.format_credits(balance_micro)}."
        )


def wallet_get(*, user) -> Wallet:
    wallet, _ = Wallet.objects.get_or_create(user=user)
    return wallet


def _ledger_post(
    *,
    user=None,
    wallet_id: int | None = None,
    amount_micro: int,
    kind: str,
    idempotency_key: str,
    reference: str = "",
    description: str = "",
    created_by=None,
) -> LedgerEntry:
    """The one writer of ledger entries. Runs twice with one key → one entry (the first is returned).

    No savepoint of its own (two queries less on the generate path); so that a refusal does not poison the
    caller's transaction, InsufficientCredits is raised only after the block has closed, having written nothing.
    """
    with transaction.atomic(savepoint=False):
        if wallet_id is not None:
            wallet = Wallet.objects.select_for_update().get(pk=wallet_id)
        else:
            wallet = Wallet.objects.select_for_update().filter(user=user).first() or _wallet_create_locked(user)
        # Checked under the wallet lock, so two posts with one key cannot both pass; the unique index backs it.
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        new_balance = wallet.balance_micro + amount_micro
        if new_balance >= 0:
            Wallet.objects.filter(pk=wallet.pk).update(balance_micro=new_balance, updated_at=timezone.now())
            return LedgerEntry.objects.create(
                wallet=wallet,
                kind=kind,
                amount_micro=amount_micro,
                balance_after_micro=new_balance,
                idempotency_key=idempotency_key,
                reference=reference[:100],
                description=description[:300],
                created_by=created_by,
            )
    raise InsufficientCredits(required_micro=-amount_micro, balance_micro=wallet.balance_micro)


def _wallet_create_locked(user) -> Wallet:
    Wallet.objects.get_or_create(user=user)
    return Wallet.objects.select_for_update().get(user=user)


def credits_grant(*, user, amount_micro: int, reason: str, idempotency_key: str, created_by=None) -> LedgerEntry:
    if amount_micro <= 0:
        raise ValueError("A grant adds credits; use credits_adjust to take them.")
    return _ledger_post(
        user=user,
        amount_micro=amount_micro,
        kind=LedgerEntry.Kind.GRANT,
        idempotency_key=idempotency_key,
        description=reason,
        created_by=created_by,
    )


def credits_adjust(*, user, amount_micro: int, reason: str, idempotency_key: str, created_by=None) -> LedgerEntry:
    """A manual correction by an admin, either sign; never below zero."""
    if amount_micro == 0:
        raise ValueError("An adjustment of zero changes nothing.")
    return _ledger_post(
        user=user,
        amount_micro=amount_micro,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        idempotency_key=idempotency_key,
        description=reason,
        created_by=created_by,
    )


def credits_from_commission(*, user, amount_micro: int, idempotency_key: str, reference: str = "") -> LedgerEntry:
    """Affiliate commission converted into spendable credits (the affiliates app debits its own ledger)."""
    if amount_micro <= 0:
        raise ValueError("A conversion adds credits.")
    return _ledger_post(
        user=user,
        amount_micro=amount_micro,
        kind=LedgerEntry.Kind.COMMISSION,
        idempotency_key=idempotency_key,
        reference=reference,
        description="Affiliate commission converted to credits",
    )


def hold_place(*, user, amount_micro: int, key: str, reference: str = "", description: str = "") -> Hold:
    """Takes `amount_micro` now (a debit entry); raises InsufficientCredits and takes nothing if it can't.

    Runs inside the caller's transaction, with the row the hold pays for, so both exist or neither.
    """
    if amount_micro < 0:
        raise ValueError("A hold cannot be negative.")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("hold_place must run inside the transaction that creates what it pays for.")
    if amount_micro:
        entry = _ledger_post(
            user=user,
            amount_micro=-amount_micro,
            kind=LedgerEntry.Kind.DEBIT,
            idempotency_key=f"{key}:debit",
            reference=reference,
            description=description,
        )
        wallet_id = entry.wallet_id
    else:
        wallet_id = wallet_get(user=user).pk
    return Hold.objects.create(key=key, wallet_id=wallet_id, amount_micro=amount_micro)


def hold_settle(*, hold: Hold, charged_micro: int | None = None, reference: str = "") -> bool:
    """Keeps the hold as the charge; a smaller actual charge returns the difference. True if this call settled it."""
    charged = hold.amount_micro if charged_micro is None else max(0, min(charged_micro, hold.amount_micro))
    with transaction.atomic():
        if not _hold_transition(hold, Hold.Status.HELD, Hold.Status.SETTLED, charged_micro=charged):
            return False
        unused = hold.amount_micro - charged
        if unused:
            _ledger_post(
                wallet_id=hold.wallet_id,
                amount_micro=unused,
                kind=LedgerEntry.Kind.REFUND,
                idempotency_key=f"{hold.key}:unused",
                reference=reference,
                description="Unused part of the hold returned",
            )
    return True


def hold_release(*, hold: Hold, reason: str, reference: str = "") -> bool:
    """Returns the whole hold (failure, timeout, cancel). True if this call released it."""
    with transaction.atomic():
        if not _hold_transition(hold, Hold.Status.HELD, Hold.Status.RELEASED, charged_micro=0):
            return False
        if hold.amount_micro:
            _ledger_post(
                wallet_id=hold.wallet_id,
                amount_micro=hold.amount_micro,
                kind=LedgerEntry.Kind.REFUND,
                idempotency_key=f"{hold.key}:release",
                reference=reference,
                description=reason,
            )
    return True


def hold_refund(*, hold: Hold, reason: str, created_by=None, reference: str = "") -> bool:
    """An admin gives back what a settled hold charged. True if this call refunded it."""
    with transaction.atomic():
        if not _hold_transition(hold, Hold.Status.SETTLED, Hold.Status.REFUNDED):
            return False
        hold.refresh_from_db(fields=["charged_micro"])
        if hold.charged_micro:
            _ledger_post(
                wallet_id=hold.wallet_id,
                amount_micro=hold.charged_micro,
                kind=LedgerEntry.Kind.REFUND,
                idempotency_key=f"{hold.key}:refund",
                reference=reference,
                description=reason,
                created_by=created_by,
            )
    return True


def _hold_transition(hold: Hold, source: str, target: str, **fields) -> bool:
    # A conditional UPDATE: of two concurrent callers exactly one sees a row change.
    now = timezone.now()
    changed = Hold.objects.filter(pk=hold.pk, status=source).update(status=target, resolved_at=now, **fields)
    if changed:
        hold.status = target
        hold.resolved_at = now
        for name, value in fields.items():
            setattr(hold, name, value)
    return bool(changed)


@dataclass(frozen=True)
class LedgerProblem:
    wallet_id: int
    user: str
    balance_micro: int
    entries_sum_micro: int

    def __str__(self):
        return (
            f"wallet {self.wallet_id} ({self.user}): balance {self.balance_micro} µ, "
            f"entries sum {self.entries_sum_micro} µ"
        )


def ledger_check() -> list[LedgerProblem]:
    """The invariant: every wallet's balance equals the sum of its entries and is not negative."""
    wallets = Wallet.objects.select_related("user").annotate(
        entries_sum=models.functions.Coalesce(Sum("entries__amount_micro"), 0, output_field=models.BigIntegerField())
    )
    return [
        LedgerProblem(w.pk, str(w.user), w.balance_micro, w.entries_sum)
        for w in wallets
        if w.balance_micro != w.entries_sum or w.balance_micro < 0
    ]
