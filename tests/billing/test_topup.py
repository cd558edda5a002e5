"""Saving a card and agent top-ups, against localstripe through the official stripe library."""

import time

import httpx
import pytest

from apps.billing.models import LedgerEntry, Payment, PaymentMethod
from apps.billing.services import wallet_get
from tests.billing.conftest import (
    API_BASE,
    PUBLISHABLE_KEY,
    WEBHOOK_SECRET,
    card_create,
    card_save,
    card_save_direct,
    customer_of,
    stripe_client,
)

pytestmark = pytest.mark.django_db


def topups(user):
    return LedgerEntry.objects.filter(wallet__user=user, kind=LedgerEntry.Kind.TOPUP)


def test_it_saves_a_card_then_tops_up_once(bob, bob_api, stripe_on):
    card = card_save(bob_api)
    assert card == {
        "id": card["id"],
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
        "is_default": True,
    }
    # localstripe does not attach a card when its SetupIntent succeeds: confirm attached it to the customer.
    method = stripe_client().v1.payment_methods.retrieve(card["id"])
    assert method.customer == customer_of(bob)
    assert stripe_client().v1.customers.retrieve(customer_of(bob)).invoice_settings.default_payment_method == card["id"]

    response = bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["success"] is True
    assert body["credits_added"] == 10
    assert body["credits"] == 10
    assert body["charged"] == {"amount": 10.61, "currency": "usd"}  # (10.00 + 0.30) / (1 - 2.9 %), rounded up
    assert body["fee"] == {"amount": 0.61, "currency": "usd"}
    assert body["payment_intent_id"].startswith("pi_")
    intent = stripe_client().v1.payment_intents.retrieve(body["payment_intent_id"])
    assert (intent.amount, intent.currency, intent.status) == (1061, "usd", "succeeded")
    assert intent.customer == customer_of(bob)
    entry = topups(bob).get()
    assert (entry.amount_micro, entry.idempotency_key) == (10_000_000, f"stripe:pi:{intent.id}")
    payment = Payment.objects.get(user=bob)
    assert (payment.status, payment.amount_cents, payment.fee_cents, payment.card_last4) == (
        "succeeded",
        1061,
        61,
        "4242",
    )


def test_it_answers_402_and_adds_nothing_when_the_card_is_declined(bob, bob_api, stripe_on):
    # 4000000000000341 attaches fine, then every charge on it is declined.
    card_save(bob_api, number="4000000000000341")

    response = bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")

    assert response.status_code == 402
    body = response.json()
    assert (body["success"], body["error"]) == (False, "payment_failed")
    assert "declined" in body["message"].lower()
    assert body["topup"]["setup_endpoint"] == "http://testserver/api/v1/agent_setup_payment.php"
    assert {"method": "POST", "url": "http://testserver/api/v1/agent_topup.php"}.items() <= body["topup"]["ways"][
        0
    ].items()
    assert wallet_get(user=bob).balance_micro == 0
    assert not topups(bob).exists()
    assert Payment.objects.get(user=bob).status == Payment.Status.FAILED


def test_it_charges_once_for_one_idempotency_key(bob, bob_api, stripe_on):
    # localstripe ignores Stripe's Idempotency-Key; the API's own Idempotency-Key replay is what is shown here.
    card_save(bob_api)
    first = bob_api.post("/api/v1/agent_topup.php", {"credits": 7}, format="json", HTTP_IDEMPOTENCY_KEY="top-1")
    again = bob_api.post("/api/v1/agent_topup.php", {"credits": 7}, format="json", HTTP_IDEMPOTENCY_KEY="top-1")

    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    intents = stripe_client().v1.payment_intents.list().data
    assert [intent.id for intent in intents] == [first.json()["payment_intent_id"]]
    assert topups(bob).count() == 1
    assert wallet_get(user=bob).balance_micro == 7_000_000

    other = bob_api.post("/api/v1/agent_topup.php", {"credits": 8}, format="json", HTTP_IDEMPOTENCY_KEY="top-1")
    assert (other.status_code, other.json()["error"]) == (422, "idempotency_key_reused")


def test_it_lets_a_declined_request_be_retried_with_its_key_after_the_card_changed(bob, bob_api, stripe_on):
    card_save(bob_api, number="4000000000000341")
    declined = bob_api.post("/api/v1/agent_topup.php", {"credits": 5}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert declined.status_code == 402
    card_save(bob_api)
    retried = bob_api.post("/api/v1/agent_topup.php", {"credits": 5}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert retried.status_code == 200
    assert wallet_get(user=bob).balance_micro == 5_000_000


def test_it_answers_authentication_required_and_credits_when_the_holder_confirms(client, bob, bob_api, stripe_on):
    # 4000002500003155 needs 3-D Secure: localstripe answers requires_action (real Stripe raises
    # authentication_required off-session; that form is covered by a signed webhook in test_webhooks).
    card_save_direct(bob_api, "4000002500003155")

    response = bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")

    assert response.status_code == 402
    body = response.json()
    assert body["error"] == "authentication_required"
    assert body["action_url"].startswith("http://testserver/billing/pay/")
    assert wallet_get(user=bob).balance_micro == 0
    payment = Payment.objects.get(pk=body["payment_id"])
    assert payment.status == Payment.Status.REQUIRES_ACTION

    page = client.get(body["action_url"])  # no login: the holder may not be the account
    assert page.status_code == 200
    assert b"Confirm with my bank" in page.content
    # What Stripe.js does when the holder passes the bank's check (localstripe's own endpoint for it).
    intent = stripe_client().v1.payment_intents.retrieve(payment.stripe_payment_intent_id)
    httpx.post(
        f"{API_BASE}/v1/payment_intents/{intent.id}/_authenticate?success=true",
        json={"key": PUBLISHABLE_KEY, "client_secret": intent.client_secret},
    ).raise_for_status()

    done = client.get(body["action_url"])
    assert b"credits were added" in done.content
    assert wallet_get(user=bob).balance_micro == 10_000_000
    client.get(body["action_url"])
    assert topups(bob).count() == 1


def test_it_needs_a_saved_card_to_top_up(bob_api, stripe_on):
    response = bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")
    assert (response.status_code, response.json()["error"]) == (402, "payment_method_required")


@pytest.mark.parametrize("credits", [4.99, 1000.01, 0, -5])
def test_it_refuses_top_ups_outside_the_limits(bob_api, stripe_on, credits):
    card_save(bob_api)
    response = bob_api.post("/api/v1/agent_topup.php", {"credits": credits}, format="json")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert response.json()["details"][0]["field"] == "credits"
    assert not Payment.objects.exists()


def test_it_quotes_a_top_up_before_paying(bob_api, stripe_on):
    response = bob_api.get("/api/v1/agent_topup.php", {"credits": "25"})
    assert response.json() == {
        "success": True,
        "credits": 25,
        "price": {"amount": 25, "currency": "usd"},
        "fee": {"amount": 1.06, "currency": "usd"},
        "charge": {"amount": 26.06, "currency": "usd"},
        "min_credits": 5,
        "max_credits": 1000,
    }


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/agent_setup_payment.php", None),
        ("post", "/api/v1/agent_topup.php", {"credits": 10}),
        ("post", "/api/v1/agent_confirm_payment_method.php", {"payment_method_id": "pm_x"}),
        ("post", "/api/v1/agent_autotopup.php", {"enabled": True, "trigger_credits": 5, "amount_credits": 10}),
    ],
)
def test_it_answers_billing_disabled_without_stripe_keys(bob_api, stripe_off, method, path, body):
    response = getattr(bob_api, method)(path, body, format="json")
    assert response.status_code == 503
    assert response.json()["error"] == "billing_disabled"
    assert "Stripe" in response.json()["message"]


def test_it_keeps_one_stripe_customer_per_account(bob, bob_api, stripe_on):
    first = bob_api.post("/api/v1/agent_setup_payment.php", format="json").json()
    second = bob_api.post("/api/v1/agent_setup_payment.php", format="json").json()
    assert first["setup_intent_id"] != second["setup_intent_id"]
    customers = stripe_client().v1.customers.list().data
    assert [c.id for c in customers] == [customer_of(bob)]
    assert first["publishable_key"] == PUBLISHABLE_KEY
    assert first["setup_url"].startswith("http://testserver/billing/setup/")
    assert first["client_secret"].startswith(first["setup_intent_id"])


def test_it_does_not_confirm_another_accounts_setup_intent(bob_api, charlie_api, stripe_on):
    setup = bob_api.post("/api/v1/agent_setup_payment.php", format="json").json()
    stripe_client().v1.setup_intents.confirm(setup["setup_intent_id"], params={"payment_method": card_create()})
    response = charlie_api.post(
        "/api/v1/agent_confirm_payment_method.php", {"setup_intent_id": setup["setup_intent_id"]}, format="json"
    )
    assert (response.status_code, response.json()["error"]) == (404, "not_found")
    assert not PaymentMethod.objects.exists()


def test_it_refuses_to_confirm_a_setup_intent_without_a_card(bob_api, stripe_on):
    setup = bob_api.post("/api/v1/agent_setup_payment.php", format="json").json()
    response = bob_api.post(
        "/api/v1/agent_confirm_payment_method.php", {"setup_intent_id": setup["setup_intent_id"]}, format="json"
    )
    assert response.status_code == 400
    assert "no card" in response.json()["message"]


def test_it_answers_402_when_the_card_is_declined_at_saving(bob_api, stripe_on):
    # 4000000000000002 is declined when attached.
    response = bob_api.post(
        "/api/v1/agent_confirm_payment_method.php",
        {"payment_method_id": card_create("4000000000000002")},
        format="json",
    )
    assert (response.status_code, response.json()["error"]) == (402, "payment_failed")
    assert not PaymentMethod.objects.exists()


def test_it_lists_and_removes_cards(bob, bob_api, stripe_on):
    first = card_save(bob_api)
    second = card_save(bob_api, number="5555555555554444")
    listed = bob_api.get("/api/v1/payment_methods.php").json()["payment_methods"]
    assert [(c["id"], c["is_default"]) for c in listed] == [(second["id"], True), (first["id"], False)]

    response = bob_api.post("/api/v1/payment_method_remove.php", {"payment_method_id": second["id"]}, format="json")

    assert response.status_code == 200
    assert [(c["id"], c["is_default"]) for c in response.json()["payment_methods"]] == [(first["id"], True)]
    assert stripe_client().v1.payment_methods.retrieve(second["id"]).customer is None  # detached at Stripe
    missing = bob_api.post("/api/v1/payment_method_remove.php", {"payment_method_id": "pm_nope"}, format="json")
    assert missing.status_code == 404


def test_it_does_not_show_or_remove_another_accounts_cards(bob_api, charlie_api, stripe_on):
    card = card_save(bob_api)
    assert charlie_api.get("/api/v1/payment_methods.php").json()["payment_methods"] == []
    response = charlie_api.post("/api/v1/payment_method_remove.php", {"payment_method_id": card["id"]}, format="json")
    assert response.status_code == 404
    assert PaymentMethod.objects.filter(stripe_payment_method_id=card["id"]).exists()


@pytest.mark.django_db(transaction=True)
def test_it_meets_the_webhook_on_one_entry(live_server, stripe_on):
    """localstripe sends payment_intent.succeeded to the live server about a second after the charge; the
    synchronous answer credited first, and the webhook finds the same ledger key."""
    from tests.conftest import client_for, make_user

    httpx.post(
        f"{API_BASE}/_config/webhooks/kiwiwhale",
        json={"url": f"{live_server.url}/billing/stripe/webhook/", "secret": WEBHOOK_SECRET},
    ).raise_for_status()
    dave = make_user("dave")
    api = client_for(dave)
    card_save(api)
    response = api.post("/api/v1/agent_topup.php", {"credits": 12}, format="json")
    assert response.status_code == 200
    intent_id = response.json()["payment_intent_id"]

    from apps.billing.models import StripeEvent

    deadline = time.monotonic() + 15
    while not StripeEvent.objects.filter(type="payment_intent.succeeded", status="processed").exists():
        assert time.monotonic() < deadline, "localstripe's webhook did not arrive"
        time.sleep(0.2)
    event = StripeEvent.objects.get(type="payment_intent.succeeded")
    assert event.payload["data"]["object"]["id"] == intent_id
    assert topups(dave).count() == 1
    assert wallet_get(user=dave).balance_micro == 12_000_000
    httpx.delete(f"{API_BASE}/_config/data")
    httpx.post(f"{API_BASE}/_config/webhooks/kiwiwhale", json={"url": "http://127.0.0.1:9/", "secret": "whsec_x"})
