"""llms.txt and agent.json list every /api/v1 `.php` endpoint with the methods its view answers, and say what
this instance offers now (billing on or off)."""

import json

import pytest

from apps.api.urls import urlpatterns

pytestmark = pytest.mark.django_db

HANDLERS = ("get", "post", "put", "patch", "delete")


def _routes(billing: bool) -> set[tuple[str, str]]:
    card = {
        "agent_setup_payment.php",
        "agent_confirm_payment_method.php",
        "agent_topup.php",
        "agent_autotopup.php",
        "payment_methods.php",
        "payment_method_remove.php",
    }
    return {
        (method.upper(), f"/api/v1/{pattern.pattern}")
        for pattern in urlpatterns
        if str(pattern.pattern).endswith(".php") and (billing or str(pattern.pattern) not in card)
        for method in HANDLERS
        if hasattr(pattern.callback.cls, method)
    }


@pytest.mark.parametrize("billing", [False, True])
def test_llms_txt_and_agent_json_list_every_endpoint_with_its_methods(client, catalog, settings, billing):
    settings.STRIPE_ENABLED = billing
    expected = _routes(billing)
    assert ("GET", "/api/v1/agent_autotopup.php") in expected or not billing
    assert ("POST", "/api/v1/quote.php") in expected and ("GET", "/api/v1/low_balance.php") in expected
    text = client.get("/llms.txt").content.decode()
    listed = {
        tuple(line[2:].split(":")[0].split(" "))
        for line in text.splitlines()
        if line.startswith("- ") and " /api/v1/" in line.split(":")[0]
    }
    assert listed == expected
    assert ("Card billing is on" in text) is billing
    body = json.loads(client.get("/.well-known/agent.json").content)
    endpoints = {
        (e["method"], e["url"].removeprefix("http://testserver")) for c in body["capabilities"] for e in c["endpoints"]
    }
    assert endpoints <= expected and ("POST", "/api/v1/generate.php") in endpoints
    capabilities = {c["name"]: c for c in body["capabilities"]}
    assert capabilities["autonomous_billing"]["available"] is billing
    assert body["billing"]["card_topups"] is billing
    assert body["billing"]["redeem"] == {"method": "POST", "url": "http://testserver/api/v1/redeem.php"}
