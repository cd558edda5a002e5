"""/billing/stripe/webhook/: signatures, each event once, any order. Every test delivers each event twice.

Events about Checkout Sessions, refunds, disputes and `authentication_required` are built here and signed with
the endpoint's secret, because localstripe has no Checkout, sends no refund or dispute events and never raises
authentication_required; payment_intent events are localstripe's own where it sends them.
"""

import json
import time
import uuid

import pytest
import stripe
from django.db import transaction

from apps.billing import money
from apps.billing.models import BillingEvent, LedgerEntry, Payment, StripeEvent
from apps.billing.services import InsufficientCredits, WalletNegative, checkout_payment_create, hold_place, wallet_get
from tests.billing.conftest import (
    WEBHOOK_SECRET,
    card_create,
    card_save,
    customer_of,
    stripe_client,
    stripe_event,
    webhook_deliver,
)

pytestmark = pytest.mark.django_db


def entries(user, kind):
    return LedgerEntry.objects.filter(wallet__user=user, kind=kind)


def deliver_twice(client, event) -> list[int]:
    return [webhook_deliver(client, event).status_code for _ in range(2)]


def topup(api, credits=10) -> dict:
    response = api.post("/api/v1/agent_topup.php", {"credits": credits}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def intent_object(user, *, status="succeeded", amount=1061, credits_micro=10_000_000, **extra) -> dict:
    """A PaymentIntent as Stripe sends it in events, with the metadata this instance puts on its charges."""
    return {
        "id": extra.pop("id", f"pi_{uuid.uuid4().hex[:24]}"),
        "object": "payment_intent",
        "status": status,
        "amount": amount,
        "amount_received": amount if status == "succeeded" else 0,
        "currency": "usd",
        "payment_method": "pm_card",
        "latest_charge": extra.pop("latest_charge", f"ch_{uuid.uuid4().hex[:24]}"),
        "metadata": {
            "kiwiwhale": "1",
            "user_id": str(user.pk),
            "kind": "topup",
            "credits_micro": str(credits_micro),
            "price_cents": "1000",
            "fee_cents": str(amount - 1000),
        },
        **extra,
    }


def test_it_refuses_a_bad_signature_and_stores_nothing(client, bob, stripe_on):
    event = stripe_event("payment_intent.succeeded", intent_object(bob))
    assert webhook_deliver(client, event, secret="whsec_not_ours").status_code == 400
    unsigned = client.post("/billing/stripe/webhook/", data="{}", content_type="application/json")
    assert unsigned.status_code == 400
    assert not StripeEvent.objects.exists()
    assert wallet_get(user=bob).balance_micro == 0


def test_it_answers_503_when_no_webhook_secret_is_set(client, bob, stripe_off):
    assert webhook_deliver(client, stripe_event("payment_intent.succeeded", intent_object(bob))).status_code == 503


def test_it_ignores_a_replayed_event_from_localstripe(client, bob, bob_api, stripe_on):
    card_save(bob_api)
    intent_id = topup(bob_api)["payment_intent_id"]
    recorded = [
        event.to_dict() for event in stripe_client().v1.events.list(params={"type": "payment_intent.succeeded"}).data
    ]
    assert [event["data"]["object"]["id"] for event in recorded] == [intent_id]

    assert deliver_twice(client, recorded[0]) == [200, 200]

    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED
    assert entries(bob, "topup").count() == 1
    assert wallet_get(user=bob).balance_micro == 10_000_000


def test_it_credits_a_checkout_once_from_its_webhooks(client, bob, stripe_on):
    payment = checkout_payment_create(user=bob, quote=money.topup_quote(25_000_000))
    session = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "mode": "payment",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": payment.amount_cents,
        "currency": "usd",
        "client_reference_id": str(bob.pk),
        "metadata": {"payment_id": str(payment.pk), "user_id": str(bob.pk)},
        "payment_intent": "pi_checkout_1",
    }
    intent = intent_object(bob, id="pi_checkout_1", amount=payment.amount_cents, credits_micro=25_000_000)
    intent["metadata"]["payment_id"] = str(payment.pk)

    assert deliver_twice(client, stripe_event("checkout.session.completed", session)) == [200, 200]
    assert deliver_twice(client, stripe_event("payment_intent.succeeded", intent)) == [200, 200]

    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert (payment.stripe_checkout_session_id, payment.stripe_payment_intent_id) == ("cs_test_1", "pi_checkout_1")
    assert entries(bob, "topup").get().idempotency_key == "stripe:pi:pi_checkout_1"
    assert wallet_get(user=bob).balance_micro == 25_000_000
    # The buyer's return page (Stripe's session cannot be read back from localstripe: the webhook did it).
    client.force_login(bob)
    page = client.get("/billing/checkout/success/", {"session_id": "cs_test_1"})
    assert page.status_code == 200
    assert b"25 credits were added" in page.content
    assert entries(bob, "topup").count() == 1


def test_it_credits_a_checkout_when_the_intent_event_comes_first(client, bob, stripe_on):
    payment = checkout_payment_create(user=bob, quote=money.topup_quote(10_000_000))
    intent = intent_object(bob, id="pi_checkout_2")
    intent["metadata"]["payment_id"] = str(payment.pk)
    session = {
        "id": "cs_test_2",
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "amount_total": 1061,
        "currency": "usd",
        "metadata": {"payment_id": str(payment.pk)},
        "payment_intent": "pi_checkout_2",
    }
    assert deliver_twice(client, stripe_event("payment_intent.succeeded", intent)) == [200, 200]
    assert deliver_twice(client, stripe_event("checkout.session.completed", session)) == [200, 200]
    assert entries(bob, "topup").count() == 1
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED


def test_it_keeps_a_success_when_an_older_failure_arrives_late(client, bob, stripe_on):
    succeeded = intent_object(bob, id="pi_order_1")
    failed = intent_object(
        bob,
        id="pi_order_1",
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )
    assert deliver_twice(client, stripe_event("payment_intent.succeeded", succeeded)) == [200, 200]
    assert deliver_twice(client, stripe_event("payment_intent.payment_failed", failed)) == [200, 200]
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED
    assert entries(bob, "topup").count() == 1
    assert wallet_get(user=bob).balance_micro == 10_000_000


def test_it_credits_a_success_that_follows_a_failure(client, bob, stripe_on):
    failed = intent_object(
        bob,
        id="pi_order_2",
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )
    assert deliver_twice(client, stripe_event("payment_intent.payment_failed", failed)) == [200, 200]
    assert Payment.objects.get().status == Payment.Status.FAILED
    assert wallet_get(user=bob).balance_micro == 0
    succeeded = intent_object(bob, id="pi_order_2")
    assert deliver_twice(client, stripe_event("payment_intent.succeeded", succeeded)) == [200, 200]
    assert Payment.objects.get().status == Payment.Status.SUCCEEDED
    assert entries(bob, "topup").count() == 1


def test_it_waits_for_the_holder_on_an_authentication_required_failure(client, bob, stripe_on):
    # Real Stripe, off-session: the intent fails with last_payment_error.code = authentication_required.
    failed = intent_object(
        bob,
        status="requires_payment_method",
        last_payment_error={"code": "authentication_required", "message": "Authentication required."},
    )
    assert deliver_twice(client, stripe_event("payment_intent.payment_failed", failed)) == [200, 200]
    payment = Payment.objects.get()
    assert payment.status == Payment.Status.REQUIRES_ACTION
    assert wallet_get(user=bob).balance_micro == 0


def test_it_refuses_and_flags_an_event_when_stripe_reports_a_different_amount(client, bob, stripe_on):
    payment = checkout_payment_create(user=bob, quote=money.topup_quote(10_000_000))
    intent = intent_object(bob, amount=100)
    intent["metadata"]["payment_id"] = str(payment.pk)
    # Received (a redelivery would be refused again), not credited, and flagged on the event and the payment.
    assert deliver_twice(client, stripe_event("payment_intent.succeeded", intent)) == [200, 200]
    event = StripeEvent.objects.get()
    assert (event.status, event.attempts) == (StripeEvent.Status.REFUSED, 1)
    assert "not credited" in event.error
    payment.refresh_from_db()
    assert "expected 1061 usd" in payment.review_reason
    assert payment.status != Payment.Status.SUCCEEDED
    assert wallet_get(user=bob).balance_micro == 0


def test_it_refuses_metadata_that_claims_more_credits_than_the_amount_received_buys(client, bob, stripe_on):
    # The probe: a signed event whose metadata claims 10^12 micro-credits (a million credits) for a 50-cent charge.
    intent = intent_object(bob, amount=50, credits_micro=10**12)
    assert deliver_twice(client, stripe_event("payment_intent.succeeded", intent)) == [200, 200]
    event = StripeEvent.objects.get()
    assert event.status == StripeEvent.Status.REFUSED
    assert "claims 1000000 credits" in event.error
    assert not Payment.objects.exists()
    assert wallet_get(user=bob).balance_micro == 0
    assert not entries(bob, "topup").exists()


def test_it_credits_metadata_that_the_amount_received_pays_for(client, bob, stripe_on):
    # 10 credits cost 10.61 with the fee: a charge of 10.61 that says so is credited, once.
    intent = intent_object(bob, amount=1061, credits_micro=10_000_000)
    assert deliver_twice(client, stripe_event("payment_intent.succeeded", intent)) == [200, 200]
    assert wallet_get(user=bob).balance_micro == 10_000_000
    assert entries(bob, "topup").count() == 1


@pytest.mark.parametrize("skew", [-3600, 3600])
def test_it_refuses_a_signature_outside_the_tolerance_either_way(client, bob, stripe_on, skew):
    payload = json.dumps(stripe_event("payment_intent.succeeded", intent_object(bob)))
    timestamp = int(time.time()) + skew
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{payload}", WEBHOOK_SECRET)
    response = client.post(
        "/billing/stripe/webhook/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={signature}",
    )
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    assert wallet_get(user=bob).balance_micro == 0


def test_it_refuses_an_event_created_in_the_future(client, bob, stripe_on):
    event = stripe_event("payment_intent.succeeded", intent_object(bob))
    event["created"] = int(time.time()) + 3600
    assert webhook_deliver(client, event).status_code == 400
    assert not StripeEvent.objects.exists()


def test_it_ignores_event_types_it_does_not_handle(client, stripe_on):
    assert deliver_twice(client, stripe_event("customer.created", {"id": "cus_1", "object": "customer"})) == [200, 200]
    assert StripeEvent.objects.get().status == StripeEvent.Status.IGNORED


def test_it_takes_the_credits_back_on_a_refund_even_into_a_negative_balance(client, bob, bob_api, stripe_on):
    card_save(bob_api)
    intent_id = topup(bob_api)["payment_intent_id"]
    with transaction.atomic():
        hold_place(user=bob, amount_micro=6_000_000, key="job:spent")
    charge = stripe_client().v1.payment_intents.retrieve(intent_id).latest_charge
    charge_id = charge if isinstance(charge, str) else charge.id
    refunded = {
        "id": charge_id,
        "object": "charge",
        "payment_intent": intent_id,
        "amount": 1061,
        "amount_refunded": 1061,
        "refunded": True,
    }

    assert deliver_twice(client, stripe_event("charge.refunded", refunded)) == [200, 200]

    clawback = entries(bob, "clawback").get()
    assert clawback.amount_micro == -10_000_000
    assert wallet_get(user=bob).balance_micro == -6_000_000
    assert BillingEvent.objects.filter(user=bob, kind="clawback").count() == 1
    with pytest.raises(WalletNegative), transaction.atomic():
        hold_place(user=bob, amount_micro=0, key="job:free")
    with pytest.raises(InsufficientCredits), transaction.atomic():
        hold_place(user=bob, amount_micro=1, key="job:paid")

    topup(bob_api, credits=10)
    assert wallet_get(user=bob).balance_micro == 4_000_000
    with transaction.atomic():
        hold_place(user=bob, amount_micro=0, key="job:free-again")


def test_it_takes_back_in_proportion_whatever_the_order_of_partial_refunds(client, bob, stripe_on):
    succeeded = intent_object(bob, id="pi_partial", latest_charge="ch_partial")
    deliver_twice(client, stripe_event("payment_intent.succeeded", succeeded))
    base = {"id": "ch_partial", "object": "charge", "payment_intent": "pi_partial", "amount": 1061}
    later = stripe_event("charge.refunded", {**base, "amount_refunded": 600})
    earlier = stripe_event("charge.refunded", {**base, "amount_refunded": 300})

    assert deliver_twice(client, later) == [200, 200]
    assert deliver_twice(client, earlier) == [200, 200]

    taken = -sum(entries(bob, "clawback").values_list("amount_micro", flat=True))
    assert taken == 10_000_000 * 600 // 1061
    assert entries(bob, "clawback").count() == 1
    assert Payment.objects.get().refunded_cents == 600


def test_it_takes_credits_back_only_for_a_lost_dispute(client, bob, stripe_on):
    for name in ("won", "lost"):
        deliver_twice(client, stripe_event("payment_intent.succeeded", intent_object(bob, id=f"pi_{name}")))
        dispute = {"id": f"dp_{name}", "object": "dispute", "payment_intent": f"pi_{name}", "amount": 1061}
        assert deliver_twice(client, stripe_event("charge.dispute.created", {**dispute, "status": "needs_response"}))
        assert deliver_twice(client, stripe_event("charge.dispute.closed", {**dispute, "status": name})) == [200, 200]
    assert Payment.objects.get(stripe_payment_intent_id="pi_won").dispute_status == "won"
    assert Payment.objects.get(stripe_payment_intent_id="pi_lost").dispute_status == "lost"
    assert [e.amount_micro for e in entries(bob, "clawback")] == [-10_000_000]
    assert wallet_get(user=bob).balance_micro == 10_000_000


def test_it_applies_a_refund_that_arrives_before_its_payment(client, bob, bob_api, stripe_on):
    """The refund event comes first: the handler reads the PaymentIntent from Stripe, credits it, takes it back."""
    card = card_save(bob_api)
    customer = customer_of(bob)
    metadata = intent_object(bob)["metadata"]
    intent = stripe_client().v1.payment_intents.create(
        params={
            "amount": 1061,
            "currency": "usd",
            "customer": customer,
            "payment_method": card["id"],
            "payment_method_types": ["card"],
            "off_session": True,
            "confirm": True,
            "metadata": metadata,
        }
    )
    charge_id = intent.latest_charge if isinstance(intent.latest_charge, str) else intent.latest_charge.id
    refunded = {
        "id": charge_id,
        "object": "charge",
        "payment_intent": intent.id,
        "amount": 1061,
        "amount_refunded": 1061,
    }

    assert deliver_twice(client, stripe_event("charge.refunded", refunded)) == [200, 200]
    assert deliver_twice(client, stripe_event("payment_intent.succeeded", intent.to_dict())) == [200, 200]

    assert entries(bob, "topup").count() == 1
    assert entries(bob, "clawback").count() == 1
    assert wallet_get(user=bob).balance_micro == 0


def test_it_saves_the_card_when_the_holder_finishes_the_setup_page(client, bob, bob_api, stripe_on):
    setup = bob_api.post("/api/v1/agent_setup_payment.php", format="json").json()
    confirmed = stripe_client().v1.setup_intents.confirm(
        setup["setup_intent_id"], params={"payment_method": card_create()}
    )
    assert deliver_twice(client, stripe_event("setup_intent.succeeded", confirmed.to_dict())) == [200, 200]
    assert bob_api.get("/api/v1/payment_methods.php").json()["payment_methods"][0]["last4"] == "4242"
