"""Every credit amount the API accepts is between 0 and money.MAX_CREDITS, and the OpenAPI document says so.

Amounts beyond a bigint of micro-credits (9.2e12 credits) answered 500, and `trigger_credits: 1e12` was accepted.
"""

import pytest
from django.core.management import CommandError, call_command

from apps.billing import money
from apps.billing.models import LedgerEntry

pytestmark = pytest.mark.django_db

BIG = 9.3e12  # overflows a bigint of micro-credits


def assert_refused(response, field: str):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_request" and body["details"][0]["field"] == field


@pytest.mark.parametrize("amount", [BIG, 1e30, money.MAX_CREDITS + 0.000001, -1])
def test_it_refuses_a_low_balance_threshold_out_of_range(alice_api, amount):
    response = alice_api.post("/api/v1/low_balance.php", {"threshold_credits": amount}, format="json")
    assert_refused(response, "threshold_credits")


def test_it_accepts_the_largest_amount(alice_api):
    response = alice_api.post("/api/v1/low_balance.php", {"threshold_credits": money.MAX_CREDITS}, format="json")
    assert response.status_code == 200 and response.json()["threshold_credits"] == money.MAX_CREDITS


@pytest.mark.parametrize("amount", [BIG, 1e13])
def test_it_refuses_an_affiliate_payout_or_conversion_out_of_range(alice_api, amount):
    payout = {"credits": amount, "method": "PayPal: a@example.com"}
    assert_refused(alice_api.post("/api/v1/affiliate_payout.php", payout, format="json"), "credits")
    assert_refused(alice_api.post("/api/v1/affiliate_convert.php", {"credits": amount}, format="json"), "credits")


@pytest.mark.parametrize("field", ["trigger_credits", "amount_credits", "daily_cap_credits", "monthly_cap_credits"])
@pytest.mark.parametrize("amount", [1e12, BIG])
def test_it_refuses_a_fixed_auto_top_up_out_of_range(alice_api, field, amount):
    body = {"enabled": True, "mode": "fixed", "trigger_credits": 5, "amount_credits": 10, field: amount}
    assert_refused(alice_api.post("/api/v1/agent_autotopup.php", body, format="json"), field)
    assert alice_api.get("/api/v1/agent_autotopup.php").json()["enabled"] is False


def test_it_refuses_a_buffer_target_out_of_range(alice_api):
    body = {"enabled": True, "mode": "buffer", "trigger_credits": 5, "target_credits": BIG}
    assert_refused(alice_api.post("/api/v1/agent_autotopup.php", body, format="json"), "target_credits")


def test_it_refuses_a_top_up_out_of_range_before_calling_stripe(alice_api):
    assert_refused(alice_api.post("/api/v1/agent_topup.php", {"credits": BIG}, format="json"), "credits")
    assert_refused(alice_api.get("/api/v1/agent_topup.php", {"credits": str(BIG)}), "credits")
    assert_refused(alice_api.get("/api/v1/agent_topup.php", {"credits": "9" * 5000}), "credits")


def test_the_openapi_document_shows_the_range_of_every_credit_amount_in_requests(anon_api):
    schemas = anon_api.get("/openapi.json").json()["components"]["schemas"]
    amounts = {
        "LowBalanceRequest": ["threshold_credits"],
        "AffiliatePayoutRequest": ["credits"],
        "AffiliateConvertRequest": ["credits"],
        "TopupRequest": ["credits"],
        "AutoTopupRequest": ["trigger_credits", "amount_credits", "target_credits", "daily_cap_credits"],
    }
    for component, fields in amounts.items():
        for field in fields:
            prop = schemas[component]["properties"][field]
            assert (prop["minimum"], prop["maximum"]) == (0, money.MAX_CREDITS), (component, field)
    # A balance may be negative after a clawback: responses carry no bounds.
    assert "minimum" not in schemas["CreditsResponse"]["properties"]["credits"]


def test_the_grant_command_refuses_an_amount_beyond_the_maximum(alice):
    with pytest.raises(CommandError, match="at most"):
        call_command("grant_credits", str(alice.pk), str(BIG), reason="typo")
    assert not LedgerEntry.objects.filter(wallet__user=alice, description__contains="typo").exists()
    assert money.MAX_CREDITS * money.MICRO < 2**63 // 1000  # room for sums of many amounts in a bigint
