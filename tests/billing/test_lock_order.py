"""One lock order, wallet then profile: the ledger writer locks the wallet and may then update the profile, so
whatever locks both must take them in that order too, or two transactions can deadlock."""

import threading
import time

import pytest
from django.db import connection, transaction

from apps.billing.models import BillingProfile, Wallet
from apps.billing.services import autotopup_configure, billing_profile_get, wallet_get


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        # pg_locks is live (pg_stat_activity is a snapshot per transaction): a lock someone waits for.
        cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_switching_auto_top_up_takes_the_wallet_before_the_profile(bob):
    if connection.vendor != "postgresql":
        pytest.fail("Lock order is proven on PostgreSQL.")
    wallet, profile = wallet_get(user=bob), billing_profile_get(user=bob)
    done = threading.Event()

    def configure():
        try:
            autotopup_configure(user=bob, enabled=False)
        finally:
            connection.close()
            done.set()

    with transaction.atomic():
        # This transaction is a ledger post in the middle of its work: it holds the wallet row.
        Wallet.objects.select_for_update().get(pk=wallet.pk)
        worker = threading.Thread(target=configure)
        worker.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_a_lock():
            assert time.monotonic() < deadline, "autotopup_configure never waited for the wallet"
            time.sleep(0.05)
        # The ledger post now goes on to the profile. Had the other side locked the profile first, this is where
        # the two would deadlock; in one order, the profile is free.
        assert BillingProfile.objects.select_for_update(nowait=True).filter(pk=profile.pk).exists()
    assert done.wait(10)
    worker.join()
