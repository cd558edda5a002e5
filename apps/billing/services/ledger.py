"""The bottom layer: wallets, the ledger writer, holds, and the invariant check. Imports nothing else of billing's
services. Every movement of credits goes through `_ledger_post`, except a job's hold on PostgreSQL, which
`_hold_debit_one_statement` writes in one statement by the same rules; grep `credits_` / `hold_` to see them all.
"""

import logging
from dataclasses import dataclass

from celery import signature
from django.db import models, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from apps.billing import money
from apps.billing.models import BillingProfile, Hold, LedgerEntry, Wallet
from kiwiwhale.lib.rows import RowInsert
from kiwiwhale.lib.tasks import task_enqueue

logger = logging.getLogger(__name__)

# Kinds of entry that bring money in: they re-arm the low-balance notice when they lift the balance above it.
MONEY_IN_KINDS = {
    LedgerEntry.Kind.GRANT,
    LedgerEntry.Kind.TOPUP,
    LedgerEntry.Kind.ADJUSTMENT,
    LedgerEntry.Kind.COMMISSION,
    LedgerEntry.Kind.REDEMPTION,
}


class InsufficientCredits(Exception):
    def __init__(self, *, required_micro: int, balance_micro: int):
        self.required_micro = required_micro
        self.balance_micro = balance_micro
        super().__init__(
            f"This needs {money.format_credits(required_micro)} credits; "
            f"the balance is {money.format_credits(balance_micro)}."
        )


class WalletNegative(InsufficientCredits):
    """The wallet owes credits (a refunded or disputed payment was taken back): nothing new until it is paid."""

    def __init__(self, *, balance_micro: int):
        super().__init__(required_micro=0, balance_micro=balance_micro)
        self.args = (
            f"The balance is negative ({money.format_credits(balance_micro)} credits) after a refund or dispute; "
            "top up to bring it back to zero or more before starting new jobs.",
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
    allow_negative: bool = False,
    key_is_new: bool = False,
) -> LedgerEntry:
    """The writer of ledger entries (a job's hold on PostgreSQL: _hold_debit_one_statement). Runs twice with one
    key → one entry (the first is returned).

    Never takes a balance below zero, except with `allow_negative`, which only `credits_claw_back` passes (a
    refunded or lost-disputed payment takes its credits back even when they were spent). Adding credits is
    always allowed, also to a negative wallet (it pays the debt back).

    No savepoint of its own (two queries less on the generate path); so that a refusal does not poison the
    caller's transaction, InsufficientCredits is raised only after the block has closed, having written nothing.
    `key_is_new`: the caller made the key from an id it just drew at random, so no entry can hold it yet (the
    look-up is skipped; the unique index still refuses a duplicate).
    """
    with transaction.atomic(savepoint=False):
        if wallet_id is not None:
            wallet = Wallet.objects.select_for_update().get(pk=wallet_id)
        else:
            wallet = Wallet.objects.select_for_update().filter(user=user).first() or _wallet_create_locked(user)
        # Checked under the wallet lock, so two posts with one key cannot both pass; the unique index backs it.
        existing = None if key_is_new else LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing
        new_balance = wallet.balance_micro + amount_micro
        if new_balance >= 0 or amount_micro >= 0 or allow_negative:
            Wallet.objects.filter(pk=wallet.pk).update(balance_micro=new_balance, updated_at=timezone.now())
            threshold = wallet.low_balance_threshold_micro
            if amount_micro > 0 and kind in MONEY_IN_KINDS and threshold is not None and new_balance >= threshold:
                # Money came in above the low-balance threshold: the next crossing below it sends a notice again.
                BillingProfile.objects.filter(user_id=wallet.user_id, low_balance_notice_sent=True).update(
                    low_balance_notice_sent=False
                )
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


def hold_place(
    *,
    user,
    amount_micro: int,
    key: str,
    reference: str = "",
    description: str = "",
    key_is_new: bool = False,
    paid_row: RowInsert | None = None,
) -> Hold:
    """Takes `amount_micro` now (a debit entry); raises InsufficientCredits and takes nothing if it can't.

    Runs inside the caller's transaction, with the row the hold pays for, so both exist or neither. The hold
    carries `balance_after_micro`, the wallet's balance once it was taken (not a column). `key_is_new`: see
    _ledger_post.

    `paid_row`: that row's INSERT, its `hold` column left to this function. Where the hold takes one statement
    (_hold_debit_one_statement), the row is written in it, so the wallet's lock lasts only from that statement to
    the commit; `hold.paid_row_written` tells the caller whether it still has to save the row.
    """
    if amount_micro < 0:
        raise ValueError("A hold cannot be negative.")
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("hold_place must run inside the transaction that creates what it pays for.")
    if amount_micro and key_is_new and connection.vendor == "postgresql":
        hold = _hold_debit_one_statement(
            user=user,
            amount_micro=amount_micro,
            key=key,
            reference=reference,
            description=description,
            paid_row=paid_row,
        )
        if hold is not None:
            return hold
        # No row: no wallet yet, or not enough credits. The general writer tells which (and creates the wallet).
    if amount_micro:
        entry = _ledger_post(
            user=user,
            amount_micro=-amount_micro,
            kind=LedgerEntry.Kind.DEBIT,
            idempotency_key=f"{key}:debit",
            reference=reference,
            description=description,
            key_is_new=key_is_new,
        )
        wallet, balance_after = entry.wallet, entry.balance_after_micro
        _after_debit(wallet, amount_micro=amount_micro, balance_after_micro=balance_after)
        wallet_id = wallet.pk
    else:
        wallet = wallet_get(user=user)
        if wallet.balance_micro < 0:
            # A clawback left a debt: nothing new starts, not even a free job, until the balance is back at zero.
            raise WalletNegative(balance_micro=wallet.balance_micro)
        wallet_id, balance_after = wallet.pk, wallet.balance_micro
    hold = Hold.objects.create(key=key, wallet_id=wallet_id, amount_micro=amount_micro)
    hold.balance_after_micro = balance_after
    hold.paid_row_written = False
    return hold


# What _ledger_post and Hold.objects.create do for a debit with a new key (a job's hold), in one statement and one
# round trip instead of four, with the row the hold pays for (the job) when the caller gives it: the wallet row
# stays locked from here to the commit, while every submit on the wallet waits for it, instead of from a SELECT FOR
# UPDATE four statements and an INSERT earlier. No row when the wallet is missing or short of credits.
# PostgreSQL only (SQLite has no data-modifying WITH). The tables and columns are the models' (a test compares the
# rows both writers make).
_HOLD_DEBIT_SQL = """
WITH wallet AS (
    UPDATE billing_wallet SET balance_micro = balance_micro - %(amount)s, updated_at = %(now)s
    WHERE user_id = %(user_id)s AND balance_micro >= %(amount)s
    RETURNING id, balance_micro, autotopup_trigger_micro, low_balance_threshold_micro
), entry AS (
    INSERT INTO billing_ledgerentry (wallet_id, kind, amount_micro, balance_after_micro, idempotency_key,
                                     reference, description, created_by_id, created_at)
    SELECT id, %(kind)s, -%(amount)s, balance_micro, %(entry_key)s, %(reference)s, %(description)s, NULL, %(now)s
    FROM wallet
), hold AS (
    INSERT INTO billing_hold (wallet_id, key, amount_micro, charged_micro, status, created_at, resolved_at)
    SELECT id, %(key)s, %(amount)s, NULL, %(status)s, %(now)s, NULL FROM wallet
    RETURNING id
){paid}
SELECT wallet.id, wallet.balance_micro, wallet.autotopup_trigger_micro, wallet.low_balance_threshold_micro, hold.id
FROM wallet, hold
"""
# The row the hold pays for, its hold column the new hold's id: no hold, no row.
_PAID_ROW_SQL = """, paid AS (
    INSERT INTO {table} ({columns}, {hold_column}) SELECT {values}, id FROM hold
)"""


def _hold_debit_sql(paid_row: RowInsert | None, connection) -> tuple[str, dict]:
    if paid_row is None:
        return _HOLD_DEBIT_SQL.format(paid=""), {}
    names = [f"paid_{index}" for index in range(len(paid_row.columns))]
    paid = _PAID_ROW_SQL.format(
        table=paid_row.table,
        columns=", ".join(paid_row.columns),
        hold_column=connection.ops.quote_name(type(paid_row.instance)._meta.get_field("hold").column),
        values=", ".join(f"%({name})s" for name in names),
    )
    return _HOLD_DEBIT_SQL.format(paid=paid), dict(zip(names, paid_row.params, strict=True))


def _hold_debit_one_statement(
    *, user, amount_micro: int, key: str, reference: str, description: str, paid_row: RowInsert | None
) -> Hold | None:
    now = timezone.now()
    connection = transaction.get_connection()
    sql, paid_params = _hold_debit_sql(paid_row, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                **paid_params,
                "amount": amount_micro,
                "now": now,
                "user_id": user.pk,
                "kind": LedgerEntry.Kind.DEBIT,
                "entry_key": f"{key}:debit",
                "reference": reference[:100],
                "description": description[:300],
                "key": key,
                "status": Hold.Status.HELD,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None  # the paid row was not written either
    wallet_id, balance_after, trigger, threshold, hold_id = row
    wallet = Wallet(pk=wallet_id, autotopup_trigger_micro=trigger, low_balance_threshold_micro=threshold)
    _after_debit(wallet, amount_micro=amount_micro, balance_after_micro=balance_after)
    hold = Hold.from_db(
        connection.alias,
        ["id", "wallet_id", "key", "amount_micro", "charged_micro", "status", "created_at", "resolved_at"],
        [hold_id, wallet_id, key, amount_micro, None, Hold.Status.HELD, now, None],
    )
    hold.balance_after_micro = balance_after
    hold.paid_row_written = paid_row is not None
    if paid_row is not None:
        paid_row.written()
    return hold


def _after_debit(wallet: Wallet, *, amount_micro: int, balance_after_micro: int) -> None:
    """After a hold commits: auto top-up and the low-balance notice, each looked at by a task, never inline.

    `wallet` carries the thresholds read with the locked row, so this costs no query; nothing is enqueued unless
    the wallet has auto top-up or a threshold and the balance is below it.
    """
    trigger = wallet.autotopup_trigger_micro
    if trigger is not None and balance_after_micro < trigger:
        transaction.on_commit(lambda: _enqueue("autotopup_run", wallet.pk))
    threshold = wallet.low_balance_threshold_micro
    if threshold is not None and balance_after_micro + amount_micro >= threshold > balance_after_micro:
        transaction.on_commit(lambda: _enqueue("low_balance_notify", wallet.pk))


def _enqueue(task_name: str, wallet_id: int) -> None:
    # By name: the ledger is the bottom layer and imports no task module (they import the services).
    # If the broker is down, the next debit (or the reconciler, for auto top-up) looks again.
    task_enqueue(signature(f"apps.billing.tasks.{task_name}"), wallet_id)


def hold_settle(*, hold: Hold, charged_micro: int | None = None, reference: str = "") -> bool:
    """Keeps the hold as the charge; a smaller actual charge returns the difference. True if this call settled it."""
    charged = hold.amount_micro if charged_micro is None else max(0, min(charged_micro, hold.amount_micro))
    # No savepoint of its own (two round trips less per completed job): it writes nothing before it can refuse,
    # and an error ends the caller's transaction, the job's completion, with it.
    with transaction.atomic(savepoint=False):
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


def credits_claw_back(
    *, wallet_id: int, amount_micro: int, idempotency_key: str, reference: str = "", description: str = ""
) -> LedgerEntry:
    """Takes back the credits of a refunded or lost-disputed payment, even into a negative balance (the only
    path that may: a negative wallet then blocks new jobs until it is topped up)."""
    if amount_micro <= 0:
        raise ValueError("A clawback takes a positive amount.")
    return _ledger_post(
        wallet_id=wallet_id,
        amount_micro=-amount_micro,
        kind=LedgerEntry.Kind.CLAWBACK,
        idempotency_key=idempotency_key,
        reference=reference,
        description=description,
        allow_negative=True,
    )


@dataclass(frozen=True)
class LedgerProblem:
    wallet_id: int
    user: str
    balance_micro: int
    entries_sum_micro: int
    clawback_sum_micro: int = 0

    def __str__(self):
        if self.balance_micro != self.entries_sum_micro:
            return (
                f"wallet {self.wallet_id} ({self.user}): balance {self.balance_micro} µ, "
                f"entries sum {self.entries_sum_micro} µ"
            )
        return (
            f"wallet {self.wallet_id} ({self.user}): balance {self.balance_micro} µ is below what clawbacks "
            f"explain ({self.clawback_sum_micro} µ)"
        )


def ledger_check() -> list[LedgerProblem]:
    """The invariant: every wallet's balance equals the sum of its entries, and it is negative only as far as
    clawbacks (refunded or lost-disputed payments) took it: balance >= the sum of its clawback entries."""
    big = models.BigIntegerField()
    wallets = Wallet.objects.select_related("user").annotate(
        entries_sum=models.functions.Coalesce(Sum("entries__amount_micro"), 0, output_field=big),
        clawback_sum=models.functions.Coalesce(
            Sum("entries__amount_micro", filter=Q(entries__kind=LedgerEntry.Kind.CLAWBACK)), 0, output_field=big
        ),
    )
    return [
        LedgerProblem(w.pk, str(w.user), w.balance_micro, w.entries_sum, w.clawback_sum)
        for w in wallets
        if w.balance_micro != w.entries_sum or w.balance_micro < min(0, w.clawback_sum)
    ]
