"""The reconciler (payments_reconcile) against localstripe, with Stripe's answers lost for real by a proxy.

Fault: the charge happens at Stripe, the answer never reaches the app (stripe_proxy.py closes the connection
after localstripe answered). Whatever then runs (the reconciler, twice; the webhook) credits the wallet once.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing import money, tasks
from apps.billing.models import LedgerEntry, Payment, StripeEvent
from apps.billing.services import (
    autotopup_configure,
    autotopup_run,
    checkout_payment_create,
    payments_reconcile,
    wallet_get,
)
from tests.billing.conftest import PORT, card_save, stripe_client, stripe_event, webhook_deliver
from tests.billing.stripe_proxy import StripeProxy

pytestmark = pytest.mark.django_db


@pytest.fixture
def proxy(settings, stripe_on):
    """The app's Stripe calls go through the proxy from here on (the test's own client talks to localstripe)."""
    proxy = StripeProxy(PORT)
    settings.STRIPE_API_BASE = proxy.url
    yield proxy
    proxy.close()


def intents():
    return list(stripe_client().v1.payment_intents.list().data)


def topups(user):
    return LedgerEntry.objects.filter(wallet__user=user, kind=LedgerEntry.Kind.TOPUP)


def test_a_charge_whose_answer_was_lost_is_credited_exactly_once_by_the_reconciler(client, bob, bob_api, proxy):
    card = card_save(bob_api)
    proxy.drop_answers = True
    response = bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")
    assert (response.status_code, response.json()["error"]) == (502, "payment_provider_error")

    # Stripe charged the card; the app heard nothing, but its row was committed before the call.
    [charged] = intents()
    assert (charged.status, charged.amount) == ("succeeded", 1061)
    payment = Payment.objects.get(user=bob)
    assert (payment.status, payment.stripe_payment_intent_id) == (Payment.Status.PENDING, None)
    assert payment.stripe_payment_method_id == card["id"] == charged.payment_method
    assert charged.metadata["payment_id"] == str(payment.pk)
    assert wallet_get(user=bob).balance_micro == 0

    proxy.drop_answers = False
    assert payments_reconcile(older_than_seconds=0) == 1
    payment.refresh_from_db()
    assert (payment.status, payment.stripe_payment_intent_id) == (Payment.Status.SUCCEEDED, charged.id)
    assert [entry.amount_micro for entry in topups(bob)] == [10_000_000]
    assert [intent.id for intent in intents()] == [charged.id]  # the same request again: no second charge

    assert payments_reconcile(older_than_seconds=0) == 0  # nothing in flight any more
    event = stripe_event("payment_intent.succeeded", stripe_client().v1.payment_intents.retrieve(charged.id).to_dict())
    assert [webhook_deliver(client, event).status_code for _ in range(2)] == [200, 200]
    assert StripeEvent.objects.get().status == StripeEvent.Status.PROCESSED
    assert [entry.amount_micro for entry in topups(bob)] == [10_000_000]
    assert wallet_get(user=bob).balance_micro == 10_000_000


def test_a_retried_auto_top_up_charges_the_card_it_was_claimed_with(alice, proxy):
    from tests.conftest import client_for

    api = client_for(alice)
    first_card = card_save(api)
    autotopup_configure(user=alice, enabled=True, trigger_micro=20_000_000, amount_micro=20_000_000)
    proxy.drop_answers = True
    payment = autotopup_run(wallet_id=wallet_get(user=alice).pk)
    assert payment.status == Payment.Status.PENDING
    proxy.drop_answers = False
    second_card = card_save(api)  # the account's default card changes while the answer is missing
    assert second_card["id"] != first_card["id"]

    payments_reconcile(older_than_seconds=0)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    [charged] = intents()
    assert charged.payment_method == first_card["id"] == payment.stripe_payment_method_id
    assert wallet_get(user=alice).balance_micro == 30_000_000


def test_it_walks_every_payment_in_flight_oldest_first(bob, stripe_on):
    # Checkouts that never reached Stripe, more than one batch of them, all older than a day.
    now = timezone.now()
    payments = [checkout_payment_create(user=bob, quote=money.topup_quote(10_000_000)) for _ in range(205)]
    for age, payment in enumerate(reversed(payments)):
        Payment.objects.filter(pk=payment.pk).update(created_at=now - timedelta(days=2, minutes=age))
    assert tasks.payments_reconcile() == 205  # the beat task: every one, not the newest 200
    settled = Payment.objects.filter(user=bob).order_by("updated_at", "id")
    assert {p.status for p in settled} == {Payment.Status.CANCELED}
    assert [p.pk for p in settled] == [p.pk for p in Payment.objects.filter(user=bob).order_by("created_at", "id")]
    assert tasks.payments_reconcile() == 0


def test_it_gives_up_on_a_charge_whose_idempotency_key_may_have_expired(bob, bob_api, proxy):
    card_save(bob_api)
    proxy.drop_answers = True
    assert bob_api.post("/api/v1/agent_topup.php", {"credits": 10}, format="json").status_code == 502
    proxy.drop_answers = False
    Payment.objects.update(created_at=timezone.now() - timedelta(hours=23, minutes=30))
    payments_reconcile(older_than_seconds=0)
    payment = Payment.objects.get(user=bob)
    # Sending it again could charge twice; the charge that did happen still credits when its webhook arrives.
    assert payment.status == Payment.Status.CANCELED
    assert len(intents()) == 1
    assert wallet_get(user=bob).balance_micro == 0
