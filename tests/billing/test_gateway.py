"""stripe_gateway turns the library's errors into ours. Real Stripe's off-session `authentication_required`
cannot be produced by localstripe, so its recorded error body is fed through the library's own exception."""

import pytest
import stripe

from apps.billing import stripe_gateway as gateway

AUTHENTICATION_REQUIRED = {
    "error": {
        "type": "card_error",
        "code": "authentication_required",
        "decline_code": "authentication_required",
        "message": "Your card was declined. This transaction requires authentication.",
        "payment_intent": {
            "id": "pi_3Recorded",
            "object": "payment_intent",
            "status": "requires_payment_method",
            "amount": 1061,
            "currency": "usd",
            "metadata": {"user_id": "1", "credits_micro": "10000000"},
            "last_payment_error": {"code": "authentication_required", "payment_method": {"id": "pm_1"}},
        },
    }
}


def raise_recorded():
    body = AUTHENTICATION_REQUIRED["error"]
    raise stripe.CardError(
        body["message"], None, body["code"], http_body="{}", http_status=402, json_body=AUTHENTICATION_REQUIRED
    )


def test_it_keeps_the_payment_intent_of_an_authentication_required_decline():
    with pytest.raises(gateway.CardDeclined) as info:
        gateway._call(raise_recorded)
    assert info.value.code == "authentication_required"
    assert info.value.payment_intent["id"] == "pi_3Recorded"
    assert info.value.payment_intent["last_payment_error"]["payment_method"] == {"id": "pm_1"}


def test_it_reports_other_stripe_failures_as_gateway_errors():
    def unreachable():
        raise stripe.APIConnectionError("Could not connect to Stripe.")

    with pytest.raises(gateway.GatewayError):
        gateway._call(unreachable)


def test_it_refuses_calls_without_a_key(settings):
    settings.STRIPE_ENABLED = False
    with pytest.raises(gateway.BillingDisabled):
        gateway.payment_intent_retrieve("pi_1")
