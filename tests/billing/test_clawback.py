"""The one path to a negative balance (clawbacks), what it blocks, and the admin's refund and dispute tools."""

import pytest
from django.db import IntegrityError, transaction

from apps.billing.models import LedgerEntry, Payment, Wallet
from apps.billing.services import (
    InsufficientCredits,
    WalletNegative,
    _ledger_post,
    credits_adjust,
    credits_claw_back,
    hold_place,
    ledger_check,
    wallet_get,
)
from tests.billing.conftest import card_save, stripe_client, stripe_event, webhook_deliver

pytestmark = pytest.mark.django_db


def test_it_lets_only_a_clawback_take_a_balance_below_zero(bob):
    wallet = wallet_get(user=bob)
    with pytest.raises(InsufficientCredits):
        credits_adjust(user=bob, amount_micro=-1, reason="x", idempotency_key="adj:neg")
    entry = credits_claw_back(wallet_id=wallet.pk, amount_micro=3_000_000, idempotency_key="cb:1")
    again = credits_claw_back(wallet_id=wallet.pk, amount_micro=3_000_000, idempotency_key="cb:1")
    assert entry.pk == again.pk
    assert (entry.kind, entry.balance_after_micro) == ("clawback", -3_000_000)
    assert ledger_check() == []


def test_the_database_refuses_a_debit_into_the_red_that_is_not_a_clawback(bob):
    wallet = wallet_get(user=bob)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(
            wallet=wallet, kind="debit", amount_micro=-1, balance_after_micro=-1, idempotency_key="raw:1"
        )


def test_it_blocks_every_new_job_while_the_balance_is_negative_even_a_free_one(bob):
    credits_claw_back(wallet_id=wallet_get(user=bob).pk, amount_micro=1_000_000, idempotency_key="cb:2")
    with pytest.raises(WalletNegative) as info, transaction.atomic():
        hold_place(user=bob, amount_micro=0, key="job:free")
    assert "negative" in str(info.value)
    with pytest.raises(InsufficientCredits), transaction.atomic():
        hold_place(user=bob, amount_micro=1, key="job:one")
    _ledger_post(user=bob, amount_micro=1_000_000, kind="grant", idempotency_key="g:back")  # credits always land
    with transaction.atomic():
        hold_place(user=bob, amount_micro=0, key="job:free-ok")


def test_a_generation_on_a_negative_wallet_answers_402(bob, bob_api, catalog):
    credits_claw_back(wallet_id=wallet_get(user=bob).pk, amount_micro=1_000_000, idempotency_key="cb:3")
    free = bob_api.post(
        "/api/v1/generate.php",
        {"model": "kiwiwhale/upload", "input": {"file_url": "data:text/plain,hi"}},
        format="json",
    )
    assert (free.status_code, free.json()["error"]) == (402, "insufficient_credits")  # a 0-credit job too
    response = bob_api.post("/api/v1/generate.php", {"model": "local/echo-chat", "prompt": "hi"}, format="json")
    assert response.status_code == 402
    assert response.json()["error"] == "insufficient_credits"
    assert response.json()["credits"] == -1


def test_the_ledger_check_flags_a_negative_balance_no_clawback_explains(bob):
    Wallet.objects.filter(user=bob).update(balance_micro=-5)
    LedgerEntry.objects.create(
        wallet=wallet_get(user=bob), kind="clawback", amount_micro=-5, balance_after_micro=-5, idempotency_key="cb:4"
    )
    assert ledger_check() == []
    Wallet.objects.filter(user=bob).update(balance_micro=-6)
    LedgerEntry.objects.create(
        wallet=wallet_get(user=bob), kind="grant", amount_micro=-1, balance_after_micro=0, idempotency_key="bad:1"
    )
    problems = ledger_check()
    assert len(problems) == 1 and "below what clawbacks explain" in str(problems[0])
    LedgerEntry.objects.filter(idempotency_key="bad:1").delete()
    Wallet.objects.filter(user=bob).update(balance_micro=-5)  # leave the books exact for the invariant fixture


def test_an_admin_refund_takes_the_credits_back_once_and_keeps_the_books_exact(
    admin_client, client, bob, bob_api, stripe_on
):
    card_save(bob_api)
    intent_id = bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json").json()["payment_intent_id"]
    payment = Payment.objects.get(stripe_payment_intent_id=intent_id)
    with transaction.atomic():
        hold_place(user=bob, amount_micro=4_000_000, key="job:spent")

    page = admin_client.get(f"/admin/billing/payment/{payment.pk}/refund/")
    assert b"Refund payment" in page.content
    response = admin_client.post(f"/admin/billing/payment/{payment.pk}/refund/", {"amount": ""})

    assert response.status_code == 302
    payment.refresh_from_db()
    assert (payment.refunded_cents, payment.clawed_back_micro) == (1061, 10_000_000)
    refunds = stripe_client().v1.refunds.list().data
    assert [(r.payment_intent, r.amount) for r in refunds] == [(intent_id, 1061)]
    assert wallet_get(user=bob).balance_micro == -4_000_000
    # Stripe's charge.refunded for the same refund arrives afterwards, twice: nothing more is taken.
    charge = {"id": payment.stripe_charge_id, "object": "charge", "payment_intent": intent_id, "amount_refunded": 1061}
    for _ in range(2):
        assert (
            webhook_deliver(client, stripe_event("charge.refunded", charge, event_id="evt_refund")).status_code == 200
        )
    assert LedgerEntry.objects.filter(wallet__user=bob, kind="clawback").count() == 1
    assert wallet_get(user=bob).balance_micro == -4_000_000
    assert ledger_check() == []
    again = admin_client.post(f"/admin/billing/payment/{payment.pk}/refund/", {"amount": ""}, follow=True)
    assert b"Only a succeeded card payment" in again.content or b"The refund must be" in again.content


def test_an_admin_partial_refund_takes_back_its_share(admin_client, bob, bob_api, stripe_on):
    card_save(bob_api)
    bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")
    payment = Payment.objects.get()
    admin_client.post(f"/admin/billing/payment/{payment.pk}/refund/", {"amount": "5.00"})
    payment.refresh_from_db()
    assert payment.refunded_cents == 500
    assert wallet_get(user=bob).balance_micro == 10_000_000 - 10_000_000 * 500 // 1061


def test_an_admin_records_a_lost_dispute(admin_client, bob, bob_api, stripe_on):
    card_save(bob_api)
    bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")
    payment = Payment.objects.get()
    for _ in range(2):
        admin_client.post(
            "/admin/billing/payment/", {"action": "record_lost_dispute", "_selected_action": [payment.pk]}
        )
    assert wallet_get(user=bob).balance_micro == 0
    assert LedgerEntry.objects.filter(wallet__user=bob, kind="clawback").count() == 1


def test_an_admin_can_still_grant_credits_with_stripe_off(admin_client, bob, stripe_off):
    wallet = wallet_get(user=bob)
    nonce = "6f1c2d3e-0000-4000-8000-000000000001"
    response = admin_client.post(
        f"/admin/billing/wallet/{wallet.pk}/credits/", {"amount": "3", "reason": "gift", "nonce": nonce}
    )
    assert response.status_code == 302
    assert wallet_get(user=bob).balance_micro == 3_000_000


def test_the_admin_pages_open(admin_client, bob, bob_api, stripe_on):
    card_save(bob_api)
    bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")
    for model in ("payment", "paymentmethod", "stripeevent", "billingevent", "redemptionbatch", "billingprofile"):
        assert admin_client.get(f"/admin/billing/{model}/").status_code == 200, model
    assert admin_client.get("/admin/billing/redemptionbatch/add/").status_code == 200
