"""The card holder's page in a real browser: Chromium (Playwright) types a card into Stripe Elements.

Stripe.js here is localstripe's stand-in (served by localstripe at /js.stripe.com/v3/ through STRIPE_JS_URL):
the same calls (`Stripe()`, `elements().create("card")`, `confirmCardSetup`) against the local fake server.
"""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from apps.billing.models import PaymentMethod
from apps.billing.services import payment_setup_start
from tests.browser.conftest import screenshot
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def new_context(browser, live_server, stripe_on):
    """A browser context on the live server that may reach only loopback (the site and localstripe)."""
    contexts = []

    def _stay_local(route):
        host = urlsplit(route.request.url).hostname
        route.continue_() if host in ("127.0.0.1", "localhost") else route.abort()

    def open_context():
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(15_000)
        context.route("**/*", _stay_local)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


def test_it_saves_a_card_typed_on_the_setup_page(new_context):
    agent = make_user("holly", account_type="agent")
    started = payment_setup_start(user=agent)
    page = new_context().new_page()

    page.goto(started.setup_path)  # no login: the agent passed this link to the card holder
    page.fill("input[placeholder=number]", "4242424242424242")
    page.fill("input[placeholder=exp_month]", "12")
    page.fill("input[placeholder=exp_year]", "30")
    page.fill("input[placeholder=cvc]", "123")
    page.fill("input[placeholder=postal_code]", "75001")
    page.get_by_role("button", name="Save card").click()

    expect(page.locator("[data-setup-status=saved]")).to_contain_text("Visa •••• 4242")
    screenshot(page, "billing-setup-saved")
    card = PaymentMethod.objects.get(user=agent)
    assert (card.brand, card.last4, card.exp_month, card.exp_year, card.is_default) == ("visa", "4242", 12, 2030, True)


def test_it_shows_a_declined_card_on_the_setup_page(new_context):
    agent = make_user("ivan", account_type="agent")
    page = new_context().new_page()
    page.goto(payment_setup_start(user=agent).setup_path)
    page.fill("input[placeholder=number]", "4000000000000002")  # declined when it is attached
    page.fill("input[placeholder=exp_month]", "12")
    page.fill("input[placeholder=exp_year]", "30")
    page.fill("input[placeholder=cvc]", "123")
    page.get_by_role("button", name="Save card").click()

    expect(page.locator("#setup-error")).to_contain_text("declined")
    assert not PaymentMethod.objects.exists()
