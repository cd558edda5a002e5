"""/billing.php and the /billing/… pages."""

import pytest

from apps.billing.models import Payment
from apps.billing.services import setup_link_token, wallet_get
from tests.billing.conftest import card_save, stripe_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob_web(client, bob):
    client.force_login(bob)
    return client


def test_it_asks_for_a_login(client):
    response = client.get("/billing.php")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_it_says_clearly_when_card_payments_are_off(bob_web, stripe_off):
    page = bob_web.get("/billing.php")
    assert page.status_code == 200
    assert b"data-billing-disabled" in page.content
    assert b"Card payments are not set up on this instance." in page.content
    response = bob_web.post("/billing/checkout/", {"credits": "10"}, follow=True)
    assert b"Card payments are not set up on this instance." in response.content
    assert not Payment.objects.exists()


def test_it_shows_packages_with_the_fee_before_paying(bob_web, stripe_on):
    page = bob_web.get("/billing.php").content.decode()
    assert "data-billing-disabled" not in page
    assert "$10.61" in page and "$0.61" in page  # 10 credits: price, fee, total
    assert "$26.06" in page  # 25 credits
    assert "2.9% + $0.30" in page


def test_it_reports_a_checkout_that_stripe_could_not_open(bob_web, stripe_on):
    # localstripe has no Checkout Sessions (404): the buyer gets a message, the attempt is recorded as failed.
    response = bob_web.post("/billing/checkout/", {"credits": "10"}, follow=True)
    assert b"Stripe could not complete the request" in response.content
    assert Payment.objects.get().status == Payment.Status.FAILED


def test_it_refuses_a_checkout_below_the_minimum(bob_web, stripe_on):
    response = bob_web.post("/billing/checkout/", {"credits": "1"}, follow=True)
    assert b"A top-up is 5 to 1000 credits." in response.content
    assert not Payment.objects.exists()


def test_it_shows_a_pending_checkout_on_return_until_stripe_confirms(bob_web, bob, stripe_on):
    Payment.objects.create(
        user=bob,
        kind="checkout",
        credits_micro=10_000_000,
        price_cents=1000,
        fee_cents=61,
        amount_cents=1061,
        stripe_checkout_session_id="cs_pending",
    )
    page = bob_web.get("/billing/checkout/success/", {"session_id": "cs_pending"})
    assert b'data-checkout-status="pending"' in page.content
    assert wallet_get(user=bob).balance_micro == 0
    assert bob_web.get("/billing/checkout/success/", {"session_id": "cs_other"}).status_code == 404
    assert b"Nothing was charged" in bob_web.get("/billing/checkout/cancel/").content


def test_it_saves_a_card_from_the_page(bob_web, bob, stripe_on):
    response = bob_web.post("/billing/cards/add/")
    assert response.status_code == 302
    setup_url = response["Location"]
    page = bob_web.get(setup_url)
    assert page.status_code == 200
    assert b"Save card" in page.content
    assert b"/js.stripe.com/v3/" in page.content
    assert page["Cache-Control"] == "no-store"
    # What Stripe Elements does with the typed card, then the page's reload.
    from apps.billing.services import setup_link_read

    _, setup_intent_id = setup_link_read(setup_url.rstrip("/").rsplit("/", 1)[1])
    from tests.billing.conftest import card_create

    stripe_client().v1.setup_intents.confirm(setup_intent_id, params={"payment_method": card_create()})
    saved = bob_web.get(setup_url)
    assert b'data-setup-status="saved"' in saved.content
    assert b"4242" in bob_web.get("/billing.php").content


def test_it_refuses_a_forged_or_expired_setup_link(client, bob, settings, stripe_on):
    assert client.get("/billing/setup/not-a-token/").status_code == 404
    token = setup_link_token(user_id=bob.pk, setup_intent_id="seti_x")
    settings.BILLING_LINK_MAX_AGE_SECONDS = -1
    response = client.get(f"/billing/setup/{token}/")
    assert response.status_code == 404
    assert b"expired" in response.content


def test_it_sets_auto_top_up_and_the_notice_from_the_page(bob_web, bob, bob_api, stripe_on):
    refused = bob_web.post(
        "/billing/autotopup/", {"enabled": "on", "mode": "fixed", "trigger_credits": "5", "amount_credits": "20"}
    )
    assert refused.status_code == 302
    card_save(bob_api)
    bob_web.post(
        "/billing/autotopup/", {"enabled": "on", "mode": "fixed", "trigger_credits": "5", "amount_credits": "20"}
    )
    bob_web.post("/billing/low-balance/", {"threshold_credits": "2", "webhook_url": ""})
    wallet = wallet_get(user=bob)
    assert (wallet.autotopup_trigger_micro, wallet.low_balance_threshold_micro) == (5_000_000, 2_000_000)


def test_it_shows_receipts_to_their_owner_only(client, bob, bob_api, charlie, stripe_on):
    card_save(bob_api)
    payment_id = bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json").json()["payment_id"]
    client.force_login(bob)
    receipt = client.get(f"/billing/receipts/{payment_id}/").content.decode()
    assert "$10.00" in receipt and "$0.61" in receipt and "$10.61" in receipt
    assert "Visa •••• 4242" in receipt
    assert f"/billing/receipts/{payment_id}/" in client.get("/billing.php").content.decode()
    client.force_login(charlie)
    assert client.get(f"/billing/receipts/{payment_id}/").status_code == 404


def test_it_shows_the_history_and_a_negative_balance_warning(bob_web, bob):
    from apps.billing.services import credits_claw_back

    credits_claw_back(wallet_id=wallet_get(user=bob).pk, amount_micro=2_000_000, idempotency_key="cb:page")
    page = bob_web.get("/billing.php").content.decode()
    assert "Your balance is negative" in page
    assert "Clawback" in page
