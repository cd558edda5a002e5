import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from apps.billing.models import Hold, LedgerEntry, Wallet
from apps.billing.services import (
    InsufficientCredits,
    credits_adjust,
    credits_grant,
    hold_place,
    hold_refund,
    hold_release,
    hold_settle,
    ledger_check,
    wallet_get,
)
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def test_it_grants_credits_once_per_idempotency_key(bob):
    credits_grant(user=bob, amount_micro=2_000_000, reason="welcome", idempotency_key="g:1")
    credits_grant(user=bob, amount_micro=2_000_000, reason="welcome", idempotency_key="g:1")
    assert wallet_get(user=bob).balance_micro == 2_000_000
    assert LedgerEntry.objects.filter(wallet__user=bob).count() == 1


def test_it_refuses_a_hold_larger_than_the_balance_and_changes_nothing(alice):
    before = wallet_get(user=alice).balance_micro
    with pytest.raises(InsufficientCredits) as info:
        hold_place(user=alice, amount_micro=before + 1, key="job:x")
    assert info.value.required_micro == before + 1
    assert info.value.balance_micro == before
    assert wallet_get(user=alice).balance_micro == before
    assert not Hold.objects.exists()


def test_it_settles_a_hold_once_and_returns_the_unused_part(alice):
    hold = hold_place(user=alice, amount_micro=3_000_000, key="job:a")
    assert wallet_get(user=alice).balance_micro == 7_000_000
    assert hold_settle(hold=hold, charged_micro=1_000_000) is True
    assert hold_settle(hold=hold, charged_micro=1_000_000) is False
    assert hold_release(hold=hold, reason="late failure") is False
    assert wallet_get(user=alice).balance_micro == 9_000_000
    hold.refresh_from_db()
    assert (hold.status, hold.charged_micro) == (Hold.Status.SETTLED, 1_000_000)


def test_it_releases_a_hold_once(alice):
    hold = hold_place(user=alice, amount_micro=3_000_000, key="job:b")
    assert hold_release(hold=hold, reason="failed") is True
    assert hold_release(hold=hold, reason="failed") is False
    assert hold_settle(hold=hold) is False
    assert wallet_get(user=alice).balance_micro == 10_000_000
    kinds = list(LedgerEntry.objects.filter(wallet__user=alice).values_list("kind", "amount_micro"))
    assert ("refund", 3_000_000) in kinds and ("debit", -3_000_000) in kinds


def test_it_refunds_a_settled_hold_once(alice):
    hold = hold_place(user=alice, amount_micro=3_000_000, key="job:c")
    hold_settle(hold=hold)
    assert hold_refund(hold=hold, reason="admin") is True
    assert hold_refund(hold=hold, reason="admin") is False
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_it_cannot_adjust_below_zero(bob):
    with pytest.raises(InsufficientCredits):
        credits_adjust(user=bob, amount_micro=-1, reason="oops", idempotency_key="adj:1")
    assert wallet_get(user=bob).balance_micro == 0


def test_it_reports_a_wallet_whose_balance_drifted_from_its_entries(alice):
    assert ledger_check() == []
    Wallet.objects.filter(user=alice).update(balance_micro=1)
    problems = ledger_check()
    assert [p.wallet_id for p in problems] == [alice.wallet.pk]
    with pytest.raises(CommandError):
        call_command("check_ledger")
    Wallet.objects.filter(user=alice).update(balance_micro=10_000_000)  # leave the books exact for the fixture
    call_command("check_ledger")


@pytest.mark.parametrize("identifier", ["id", "username", "email"])
def test_it_grants_credits_from_the_command_line_by_any_identifier(bob, identifier, capsys):
    value = {"id": str(bob.pk), "username": bob.username, "email": bob.email.upper()}[identifier]
    call_command("grant_credits", value, "2.5", "--reason", "support")
    assert wallet_get(user=bob).balance_micro == 2_500_000
    entry = LedgerEntry.objects.get(wallet__user=bob)
    assert (entry.kind, entry.description) == ("grant", "support")
    assert "balance 2.5" in capsys.readouterr().out


def test_it_grants_once_with_a_command_idempotency_key(bob):
    for _ in range(2):
        call_command("grant_credits", "bob", "1", "--reason", "x", "--idempotency-key", "ticket-42")
    assert wallet_get(user=bob).balance_micro == 1_000_000


@pytest.mark.parametrize("args", [["nobody", "1"], ["bob", "-1"], ["bob", "0"], ["bob", "lots"]])
def test_it_rejects_bad_grants(bob, args):
    with pytest.raises(CommandError):
        call_command("grant_credits", *args, "--reason", "x")
    assert wallet_get(user=bob).balance_micro == 0


def test_it_gives_sign_up_credits_from_the_setting(settings):
    settings.SIGNUP_FREE_CREDITS = "1.5"
    user = make_user("dave")
    assert wallet_get(user=user).balance_micro == 1_500_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("key_is_new", [False, True], ids=["general-writer", "one-statement"])
def test_it_never_overdraws_under_concurrent_holds(key_is_new):
    if connection.vendor != "postgresql":
        pytest.fail("Concurrency is proven on PostgreSQL (make test sets DATABASE_URL).")
    user = make_user("erin", credits="1")
    results, barrier = [], threading.Barrier(20)

    def take(index):
        barrier.wait()
        try:
            with transaction.atomic():
                hold_place(user=user, amount_micro=100_000, key=f"job:race-{index}", key_is_new=key_is_new)
            results.append("ok")
        except InsufficientCredits:
            results.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count("ok") == 10
    assert wallet_get(user=user).balance_micro == 0


def _written(hold):
    """What a hold placement wrote, without what differs by nature (ids, keys, times)."""
    hold = Hold.objects.get(pk=hold.pk)
    entry = LedgerEntry.objects.get(idempotency_key=f"{hold.key}:debit")
    skip = {"id", "key", "idempotency_key", "created_at", "wallet"}
    return (
        {f.attname: getattr(hold, f.attname) for f in Hold._meta.concrete_fields if f.name not in skip},
        {f.attname: getattr(entry, f.attname) for f in LedgerEntry._meta.concrete_fields if f.name not in skip},
    )


def test_the_one_statement_hold_writes_what_the_general_writer_writes(alice):
    """A job's hold (a new key) is placed in one statement on PostgreSQL; the rows are the general writer's."""
    assert connection.vendor == "postgresql", "make test runs on PostgreSQL"
    from django.db import connection as conn
    from django.test.utils import CaptureQueriesContext

    with transaction.atomic():
        general = hold_place(user=alice, amount_micro=2_000_000, key="job:g", reference="job_g", description="m")
    with transaction.atomic(), CaptureQueriesContext(conn) as queries:
        fast = hold_place(
            user=alice, amount_micro=2_000_000, key="job:f", reference="job_g", description="m", key_is_new=True
        )
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert (general.balance_after_micro, fast.balance_after_micro) == (8_000_000, 6_000_000)
    written_general, written_fast = _written(general), _written(fast)
    written_general[1]["balance_after_micro"] = 6_000_000  # the second debit leaves the balance lower, as it should
    assert written_fast == written_general
    # The hold in memory is the row in the table, ready for the job that references it.
    assert {f.attname: getattr(fast, f.attname) for f in Hold._meta.concrete_fields} == {
        f.attname: getattr(Hold.objects.get(pk=fast.pk), f.attname) for f in Hold._meta.concrete_fields
    }
    assert wallet_get(user=alice).balance_micro == 6_000_000
    assert ledger_check() == []


def test_the_one_statement_hold_refuses_as_the_general_writer_does(alice):
    before = wallet_get(user=alice).balance_micro
    with pytest.raises(InsufficientCredits) as info, transaction.atomic():
        hold_place(user=alice, amount_micro=before + 1, key="job:short", key_is_new=True)
    assert (info.value.required_micro, info.value.balance_micro) == (before + 1, before)
    assert wallet_get(user=alice).balance_micro == before
    assert not Hold.objects.exists() and not LedgerEntry.objects.filter(amount_micro__lt=0).exists()
    # An account without a wallet yet: the general writer creates it, then refuses the debit.
    from django.contrib.auth import get_user_model

    newcomer = get_user_model().objects.create(username="newcomer", email="newcomer@example.com")
    Wallet.objects.filter(user=newcomer).delete()
    with pytest.raises(InsufficientCredits), transaction.atomic():
        hold_place(user=newcomer, amount_micro=1, key="job:newcomer", key_is_new=True)
    assert wallet_get(user=newcomer).balance_micro == 0
