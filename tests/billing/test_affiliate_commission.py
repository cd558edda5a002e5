"""Affiliate commission earned on a real top-up (localstripe) and reversed by Stripe's refund webhook.

Billing never imports the affiliates app: it hands each succeeded or clawed-back payment over by task name after
commit. The first test runs that handover through a live worker; the others call the affiliates task's service.
"""

import time

import pytest
from django.utils import timezone

from apps.affiliates.models import AffiliateAccount, Attribution, Commission, CommissionEntry
from apps.affiliates.services import (
    commission_award_for_payment,
    commission_convert,
    commission_handovers_catch_up,
    commissions_mature,
    referral_code_get,
)
from apps.billing.models import Payment
from apps.billing.services import ledger_check, wallet_get
from tests.billing.conftest import card_save, stripe_event, webhook_deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def referred_bob(alice, bob):
    Attribution.objects.create(referred=bob, referrer=alice, code=referral_code_get(user=alice).code, source="api")
    return bob


def wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"the worker did not {what}"
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_referred_top_up_earns_the_commission_on_net_credits_and_a_refund_reverses_it(
    client, alice, referred_bob, bob_api, stripe_on, celery_worker_process
):
    # The worker's commission rate is the default, 20 %.
    card_save(bob_api)
    response = bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["charged"]["amount"] == 10.61  # the card paid the fee too

    wait_for(Commission.objects.exists, "award the commission")
    commission = Commission.objects.get()
    # 20 % of the 10 credits bought, not of the 10.61 charged: the fee is not the platform's revenue.
    assert (commission.base_micro, commission.amount_micro, commission.status) == (10_000_000, 2_000_000, "pending")
    assert commission.payment_reference == Payment.objects.get(user=referred_bob).reference
    assert AffiliateAccount.objects.get(user=alice).pending_micro == 2_000_000

    # The hold period passes; alice converts part of it into credits.
    Commission.objects.update(available_at=timezone.now())
    assert commissions_mature() == 1
    commission_convert(user=alice, amount_micro=500_000)
    assert wallet_get(user=alice).balance_micro == 10_500_000

    # Stripe reports a full refund, twice: the buyer's credits and alice's commission are taken back once.
    payment = Payment.objects.get(user=referred_bob)
    charge = {
        "id": payment.stripe_charge_id,
        "object": "charge",
        "payment_intent": payment.stripe_payment_intent_id,
        "amount_refunded": payment.amount_cents,
    }
    for _ in range(2):
        assert webhook_deliver(client, stripe_event("charge.refunded", charge, event_id="evt_ref_1")).status_code == 200
    wait_for(lambda: Commission.objects.get().status == "reversed", "reverse the commission")
    assert CommissionEntry.objects.filter(kind="reversal").count() == 1
    account = AffiliateAccount.objects.get(user=alice)
    assert (account.pending_micro, account.available_micro, account.converted_micro) == (0, -500_000, 500_000)
    assert wallet_get(user=referred_bob).balance_micro == 0
    assert ledger_check() == []


def test_no_commission_when_the_buyer_was_not_referred(bob, bob_api, stripe_on):
    card_save(bob_api)
    assert bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json").status_code == 200
    assert commission_award_for_payment(payment_id=Payment.objects.get(user=bob).pk) is None
    assert not Commission.objects.exists()


def test_no_commission_on_a_payment_whose_credits_were_taken_back(client, referred_bob, bob_api, stripe_on):
    card_save(bob_api)
    assert bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json").status_code == 200
    payment = Payment.objects.get(user=referred_bob)
    charge = {"id": payment.stripe_charge_id, "object": "charge", "amount_refunded": payment.amount_cents}
    assert webhook_deliver(client, stripe_event("charge.refunded", charge)).status_code == 200
    # The award task ran late, after the refund: nothing to award, so nothing is left for a reversal to miss.
    assert commission_award_for_payment(payment_id=payment.pk) is None
    assert not Commission.objects.exists()


def test_the_award_is_once_per_payment(referred_bob, bob_api, stripe_on):
    card_save(bob_api)
    assert bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json").status_code == 200
    payment = Payment.objects.get(user=referred_bob)
    first = commission_award_for_payment(payment_id=payment.pk)
    assert commission_award_for_payment(payment_id=payment.pk) == first
    assert (first.amount_micro, CommissionEntry.objects.filter(kind="award").count()) == (2_000_000, 1)


def test_no_commission_when_the_referrer_pays_with_the_same_card(alice, alice_api, referred_bob, bob_api, stripe_on):
    from apps.billing.models import PaymentMethod

    card_save(alice_api)
    card_save(bob_api)
    # localstripe gives each PaymentMethod its own fingerprint; Stripe gives one card number one fingerprint.
    # Make bob's card the same physical card as alice's, as Stripe would report it.
    PaymentMethod.objects.filter(user=referred_bob).update(
        fingerprint=PaymentMethod.objects.get(user=alice).fingerprint or "fp_same"
    )
    PaymentMethod.objects.filter(user=alice).update(
        fingerprint=PaymentMethod.objects.get(user=referred_bob).fingerprint
    )
    assert bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json").status_code == 200
    assert commission_award_for_payment(payment_id=Payment.objects.get(user=referred_bob).pk) is None
    assert not Commission.objects.exists()
    assert wallet_get(user=referred_bob).balance_micro == 10_000_000  # the buyer still gets the credits


def test_a_lost_handover_is_caught_up_once(client, referred_bob, bob_api, stripe_on):
    # No worker here: the handover task of this top-up is never run, as when the broker was down at the moment.
    card_save(bob_api)
    assert bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json").status_code == 200
    assert not Commission.objects.exists()
    assert commission_handovers_catch_up() == 1
    assert commission_handovers_catch_up() == 0
    assert Commission.objects.get().status == "pending"

    payment = Payment.objects.get(user=referred_bob)
    charge = {"id": payment.stripe_charge_id, "object": "charge", "amount_refunded": payment.amount_cents}
    assert webhook_deliver(client, stripe_event("charge.refunded", charge)).status_code == 200
    assert commission_handovers_catch_up() == 1  # the reversal's handover, lost too
    assert commission_handovers_catch_up() == 0
    assert Commission.objects.get().status == "reversed"
    assert CommissionEntry.objects.filter(kind="reversal").count() == 1
