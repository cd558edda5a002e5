"""Stripe for the billing tests: localstripe on loopback, reached through the official `stripe` library.

localstripe (PyPI) is a stateful fake Stripe server. It is started once per session as a separate process on a
free port, with its disk dump off, and wiped before each test that uses it. What it cannot show (Checkout
Sessions, `authentication_required` errors, idempotency keys, refund and dispute events) is tested with signed
webhook events built here, which is how Stripe itself would deliver them.
"""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import stripe

from apps.billing.services import billing_profile_get


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT = _free_port()
API_BASE = f"http://127.0.0.1:{PORT}"
SECRET_KEY = "sk_test_localstripe"
PUBLISHABLE_KEY = "pk_test_localstripe"
WEBHOOK_SECRET = "whsec_test_" + uuid.uuid4().hex
STRIPE_ENV = {
    "STRIPE_SECRET_KEY": SECRET_KEY,
    "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
    "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "STRIPE_API_BASE": API_BASE,
    "STRIPE_MAX_NETWORK_RETRIES": "0",
}


def pytest_configure(config):
    # A Celery worker process started later in the session inherits these, so its auto top-ups charge through
    # the same localstripe. The test process itself turns Stripe on per test (the `stripe_on` fixture).
    os.environ.update(STRIPE_ENV)


@pytest.fixture(scope="session")
def localstripe():
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("localstripe_server.py")), str(PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail("localstripe exited at start")
        try:
            httpx.get(f"{API_BASE}/v1/customers", auth=(SECRET_KEY, ""), timeout=1.0)
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("localstripe did not start within 30 s")
            time.sleep(0.1)
    yield API_BASE
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture
def stripe_on(settings, localstripe):
    """Stripe on, pointed at a wiped localstripe."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = API_BASE
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_ENABLED = True
    settings.STRIPE_JS_URL = f"{API_BASE}/js.stripe.com/v3/"
    httpx.delete(f"{API_BASE}/_config/data", timeout=5.0).raise_for_status()
    return localstripe


@pytest.fixture
def stripe_off(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_PUBLISHABLE_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.STRIPE_ENABLED = False


def stripe_client() -> stripe.StripeClient:
    """The test's own view of localstripe, as an agent or Stripe's dashboard would have it."""
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": API_BASE}, max_network_retries=0)


def card_create(number: str = "4242424242424242") -> str:
    method = stripe_client().v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}
    )
    return method.id


def card_save(api, number: str = "4242424242424242") -> dict:
    """The agent flow: setup → the card holder confirms the SetupIntent with a card → confirm. Returns the card."""
    setup = api.post("/api/v1/agent_setup_payment.php", format="json")
    assert setup.status_code == 200, setup.content
    body = setup.json()
    stripe_client().v1.setup_intents.confirm(body["setup_intent_id"], params={"payment_method": card_create(number)})
    confirmed = api.post(
        "/api/v1/agent_confirm_payment_method.php", {"setup_intent_id": body["setup_intent_id"]}, format="json"
    )
    assert confirmed.status_code == 200, confirmed.content
    return confirmed.json()["payment_method"]


def card_save_direct(api, number: str) -> dict:
    """An agent that holds a PaymentMethod id confirms it without a SetupIntent (cards that need 3-D Secure)."""
    confirmed = api.post(
        "/api/v1/agent_confirm_payment_method.php", {"payment_method_id": card_create(number)}, format="json"
    )
    assert confirmed.status_code == 200, confirmed.content
    return confirmed.json()["payment_method"]


def stripe_event(event_type: str, obj: dict, *, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2026-10-28.endive",
        "data": {"object": obj},
    }


def webhook_deliver(client, event: dict, *, secret: str = WEBHOOK_SECRET):
    """Posts an event the way Stripe does: the raw JSON body signed with the endpoint's secret."""
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    return client.post(
        "/billing/stripe/webhook/", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )


def customer_of(user) -> str:
    return billing_profile_get(user=user).stripe_customer_id
