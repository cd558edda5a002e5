"""Auto top-up, fixed and buffer, against localstripe: once per need, caps, declines, concurrency."""

import threading
import time

import pytest
from django.core import mail
from django.db import connection, transaction

from apps.billing.models import BillingEvent, Payment, Wallet
from apps.billing.services import autotopup_run, hold_place, wallet_get
from tests.billing.conftest import card_save, card_save_direct
from tests.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

FIXED = {"enabled": True, "mode": "fixed", "trigger_credits": 5, "amount_credits": 20}
BUFFER = {"enabled": True, "mode": "buffer", "trigger_credits": 5, "target_credits": 50}


def spend(user, credits_micro, key):
    with transaction.atomic():
        hold_place(user=user, amount_micro=credits_micro, key=key)


def autotopups(user):
    return Payment.objects.filter(user=user, kind=Payment.Kind.AUTOTOPUP)


def configure(api, body):
    response = api.post("/api/v1/agent_autotopup.php", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**FIXED, "amount_credits": 4}, "amount_credits"),
        ({**FIXED, "amount_credits": 1001}, "amount_credits"),
        ({**BUFFER, "target_credits": 5}, "target_credits"),
        ({**FIXED, "mode": "sometimes"}, "mode"),
        ({**FIXED, "trigger_credits": -1}, "trigger_credits"),
        ({**FIXED, "daily_cap_credits": 201}, "daily_cap_credits"),
        ({**FIXED, "monthly_cap_credits": 0}, "monthly_cap_credits"),
    ],
)
def test_it_refuses_settings_it_cannot_honour(bob_api, stripe_on, body, field):
    card_save(bob_api)
    response = bob_api.post("/api/v1/agent_autotopup.php", body, format="json")
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == field
    assert bob_api.get("/api/v1/agent_autotopup.php").json()["enabled"] is False


def test_it_needs_a_saved_card(bob_api, stripe_on):
    response = bob_api.post("/api/v1/agent_autotopup.php", FIXED, format="json")
    assert (response.status_code, response.json()["error"]) == (402, "payment_method_required")


def test_it_reports_its_settings(alice, alice_api, stripe_on):
    card_save(alice_api)
    body = configure(alice_api, {**BUFFER, "daily_cap_credits": 100})
    assert body == {
        "success": True,
        "enabled": True,
        "mode": "buffer",
        "trigger_credits": 5,
        "amount_credits": 0,
        "target_credits": 50,
        "daily_cap_credits": 100,
        "monthly_cap_credits": 1000,
        "declines_in_a_row": 0,
        "disabled_reason": "",
        "events": [],
    }
    assert wallet_get(user=alice).autotopup_trigger_micro == 5_000_000
    off = configure(alice_api, {"enabled": False})
    assert off["enabled"] is False
    assert wallet_get(user=alice).autotopup_trigger_micro is None


def test_it_looks_after_a_hold_only_when_the_balance_falls_below_the_trigger(
    alice, alice_api, stripe_on, django_capture_on_commit_callbacks
):
    card_save(alice_api)
    configure(alice_api, FIXED)
    with django_capture_on_commit_callbacks() as above:
        spend(alice, 4_000_000, "job:1")  # 10 → 6
    with django_capture_on_commit_callbacks() as below:
        spend(alice, 2_000_000, "job:2")  # 6 → 4
    assert (len(above), len(below)) == (0, 1)


def test_it_adds_the_fixed_amount_once(alice, alice_api, stripe_on):
    card_save(alice_api)
    configure(alice_api, FIXED)
    spend(alice, 6_000_000, "job:1")  # 10 → 4

    payment = autotopup_run(wallet_id=wallet_get(user=alice).pk)

    assert (payment.status, payment.credits_micro, payment.amount_cents) == ("succeeded", 20_000_000, 2091)
    assert wallet_get(user=alice).balance_micro == 24_000_000
    assert autotopup_run(wallet_id=wallet_get(user=alice).pk) is None
    assert autotopups(alice).count() == 1
    events = alice_api.get("/api/v1/agent_autotopup.php").json()["events"]
    assert [e["kind"] for e in events] == ["autotopup_succeeded"]


@pytest.mark.parametrize(("target", "expected"), [(50, 45_500_000), (8, 5_000_000)])
def test_it_refills_to_the_target_in_buffer_mode(alice, alice_api, stripe_on, target, expected):
    card_save(alice_api)
    configure(alice_api, {**BUFFER, "target_credits": target})
    spend(alice, 5_500_000, "job:1")  # 10 → 4.5

    payment = autotopup_run(wallet_id=wallet_get(user=alice).pk)

    assert payment.credits_micro == expected  # 50 - 4.5; or the minimum top-up (5) when less is missing
    assert wallet_get(user=alice).balance_micro == 4_500_000 + expected


def test_it_switches_itself_off_after_three_declines_with_an_email(alice, alice_api, stripe_on):
    card_save(alice_api, number="4000000000000341")
    configure(alice_api, FIXED)
    spend(alice, 6_000_000, "job:1")
    wallet_id = wallet_get(user=alice).pk

    outcomes = [autotopup_run(wallet_id=wallet_id).status for _ in range(3)]

    assert outcomes == ["failed", "failed", "failed"]
    assert autotopup_run(wallet_id=wallet_id) is None  # off: no fourth charge
    body = alice_api.get("/api/v1/agent_autotopup.php").json()
    assert body["enabled"] is False
    assert body["declines_in_a_row"] == 3
    assert "3 declines in a row" in body["disabled_reason"]
    assert [e["kind"] for e in body["events"]] == [
        "autotopup_disabled",
        "autotopup_declined",
        "autotopup_declined",
        "autotopup_declined",
    ]
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["alice@example.com"]
    assert "switched off" in mail.outbox[0].subject
    assert wallet_get(user=alice).balance_micro == 4_000_000
    assert wallet_get(user=alice).autotopup_trigger_micro is None


def test_it_resets_the_decline_count_after_a_success(alice, alice_api, stripe_on):
    card_save(alice_api, number="4000000000000341")
    configure(alice_api, FIXED)
    spend(alice, 6_000_000, "job:1")
    autotopup_run(wallet_id=wallet_get(user=alice).pk)
    card_save(alice_api)  # a good card becomes the default
    assert autotopup_run(wallet_id=wallet_get(user=alice).pk).status == "succeeded"
    assert alice_api.get("/api/v1/agent_autotopup.php").json()["declines_in_a_row"] == 0


def test_it_stops_at_the_daily_cap_and_says_so_once(alice, alice_api, stripe_on):
    card_save(alice_api)
    configure(alice_api, {**FIXED, "daily_cap_credits": 25})
    wallet_id = wallet_get(user=alice).pk
    spend(alice, 6_000_000, "job:1")
    assert autotopup_run(wallet_id=wallet_id).status == "succeeded"  # 4 → 24
    spend(alice, 20_000_000, "job:2")  # 24 → 4

    assert autotopup_run(wallet_id=wallet_id) is None
    assert autotopup_run(wallet_id=wallet_id) is None

    assert autotopups(alice).count() == 1
    caps = BillingEvent.objects.filter(user=alice, kind="autotopup_cap_reached")
    assert [e.message for e in caps] == ["The daily auto top-up cap of 25 credits is reached."]


def test_it_waits_for_the_card_holder_when_the_bank_asks(alice, alice_api, stripe_on):
    card_save_direct(alice_api, "4000002500003155")
    configure(alice_api, FIXED)
    spend(alice, 6_000_000, "job:1")
    wallet_id = wallet_get(user=alice).pk

    payment = autotopup_run(wallet_id=wallet_id)

    assert payment.status == Payment.Status.REQUIRES_ACTION
    assert autotopup_run(wallet_id=wallet_id) is None  # one in flight: no second charge meanwhile
    assert len(mail.outbox) == 1
    assert "/billing/pay/" in mail.outbox[0].body
    assert wallet_get(user=alice).balance_micro == 4_000_000


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("settings_body", [FIXED, BUFFER], ids=["fixed", "buffer"])
def test_it_charges_once_when_many_runs_race(stripe_on, settings_body, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.fail("Concurrency is proven on PostgreSQL.")
    # Only these eight runs race: the evaluation the debit enqueues must not reach a live worker of the session.
    monkeypatch.setattr("apps.billing.services.ledger._enqueue", lambda task_name, wallet_id: None)
    user = make_user("erin", credits="10")
    api = client_for(user)
    card_save(api)
    configure(api, settings_body)
    spend(user, 6_000_000, "job:1")  # 10 → 4
    wallet_id = wallet_get(user=user).pk
    barrier, results = threading.Barrier(8), []

    def run():
        barrier.wait()
        try:
            results.append(autotopup_run(wallet_id=wallet_id))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    charged = [payment for payment in results if payment is not None]
    assert len(charged) == 1
    assert autotopups(user).get().status == Payment.Status.SUCCEEDED
    expected = 24_000_000 if settings_body is FIXED else 50_000_000
    assert wallet_get(user=user).balance_micro == expected


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("settings_body", [FIXED, BUFFER], ids=["fixed", "buffer"])
def test_it_fires_once_under_concurrent_debits_through_the_worker(stripe_on, celery_worker_process, settings_body):
    """Twelve jobs' holds at once, each enqueueing an evaluation after commit; the live worker runs them in
    parallel. The debits cross the trigger once, so exactly one charge happens."""
    if connection.vendor != "postgresql":
        pytest.fail("Concurrency is proven on PostgreSQL.")
    user = make_user("frank", credits="10")
    api = client_for(user)
    card_save(api)
    configure(api, settings_body)
    barrier = threading.Barrier(12)

    def debit(index):
        barrier.wait()
        try:
            spend(user, 500_000, f"job:race-{index}")  # 12 x 0.5 = 6: 10 → 4, below 5 once
        finally:
            connection.close()

    threads = [threading.Thread(target=debit, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    deadline = time.monotonic() + 30
    while not autotopups(user).filter(status=Payment.Status.SUCCEEDED).exists():
        assert time.monotonic() < deadline, "the worker did not top up"
        time.sleep(0.2)
    time.sleep(2)  # evaluations still queued after the charge must find nothing to do
    payment = autotopups(user).get()
    assert payment.status == Payment.Status.SUCCEEDED
    assert Wallet.objects.get(user=user).balance_micro == 4_000_000 + payment.credits_micro
    if settings_body is FIXED:
        assert payment.credits_micro == 20_000_000
    else:
        assert 45_000_000 <= payment.credits_micro <= 46_000_000  # to 50 from 4.5 … 4 at the moment of the claim


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_it_charges_at_once_when_switched_on_below_the_trigger(stripe_on, celery_worker_process):
    user = make_user("gina", credits="1")
    api = client_for(user)
    card_save(api)
    configure(api, FIXED)
    deadline = time.monotonic() + 30
    while not autotopups(user).filter(status=Payment.Status.SUCCEEDED).exists():
        assert time.monotonic() < deadline, "switching on below the trigger did not charge"
        time.sleep(0.2)
    assert Wallet.objects.get(user=user).balance_micro == 21_000_000
