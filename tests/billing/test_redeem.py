from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing.models import LedgerEntry, RedemptionBatch, RedemptionCode
from apps.billing.services import redemption_batch_create, wallet_get

pytestmark = pytest.mark.django_db


def batch(**kwargs):
    defaults = {"name": "launch", "credits_micro": 3_000_000, "count": 3}
    return redemption_batch_create(**{**defaults, **kwargs})


def test_it_makes_unguessable_codes_and_keeps_only_their_hashes():
    made, codes = batch(count=50)
    assert len(set(codes)) == 50
    assert all(len(code) == 23 and code.count("-") == 3 for code in codes)
    stored = set(RedemptionCode.objects.filter(batch=made).values_list("code_hash", flat=True))
    assert len(stored) == 50
    assert not any(code.replace("-", "") in h for code in codes for h in stored)


def test_it_redeems_a_code_once_per_account(bob, bob_api, charlie_api):
    _, codes = batch(max_uses=2)
    first = bob_api.post("/api/v1/redeem.php", {"code": codes[0].lower().replace("-", " ")}, format="json")
    assert first.json() == {"success": True, "credits_added": 3, "credits": 3}
    again = bob_api.post("/api/v1/redeem.php", {"code": codes[0]}, format="json")
    assert (again.status_code, again.json()["error"]) == (409, "code_already_redeemed")
    assert charlie_api.post("/api/v1/redeem.php", {"code": codes[0]}, format="json").status_code == 200
    entry = LedgerEntry.objects.get(wallet__user=bob)
    assert (entry.kind, entry.amount_micro) == ("redemption", 3_000_000)
    assert wallet_get(user=bob).balance_micro == 3_000_000


def test_it_refuses_used_up_expired_and_unknown_codes(alice_api, bob_api, charlie_api):
    _, single = batch(max_uses=1)
    _, expired = batch(expires_at=timezone.now() - timedelta(minutes=1))
    assert bob_api.post("/api/v1/redeem.php", {"code": single[0]}, format="json").status_code == 200
    used = charlie_api.post("/api/v1/redeem.php", {"code": single[0]}, format="json")
    assert (used.status_code, used.json()["error"]) == (410, "code_used_up")
    old = charlie_api.post("/api/v1/redeem.php", {"code": expired[0]}, format="json")
    assert (old.status_code, old.json()["error"]) == (410, "code_expired")
    unknown = charlie_api.post("/api/v1/redeem.php", {"code": "AAAAA-BBBBB-CCCCC-DDDDD"}, format="json")
    assert (unknown.status_code, unknown.json()["error"]) == (400, "invalid_code")
    RedemptionBatch.objects.update(disabled=True)
    assert alice_api.post("/api/v1/redeem.php", {"code": single[1]}, format="json").status_code == 410


def test_it_limits_attempts_per_account(bob_api, settings):
    settings.RATE_REDEEM_ACCOUNT = "3/hour"
    statuses = [bob_api.post("/api/v1/redeem.php", {"code": f"WRONG-{i}"}, format="json").status_code for i in range(4)]
    assert statuses == [400, 400, 400, 429]
    _, codes = batch()
    blocked = bob_api.post("/api/v1/redeem.php", {"code": codes[0]}, format="json")
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


def test_it_limits_attempts_per_address(bob_api, charlie_api, settings):
    settings.RATE_REDEEM_IP = "2/hour"
    assert bob_api.post("/api/v1/redeem.php", {"code": "x"}, format="json").status_code == 400
    assert charlie_api.post("/api/v1/redeem.php", {"code": "x"}, format="json").status_code == 400
    assert charlie_api.post("/api/v1/redeem.php", {"code": "x"}, format="json").status_code == 429


def test_it_redeems_on_the_billing_page(client, bob):
    _, codes = batch()
    client.force_login(bob)
    response = client.post("/billing/redeem/", {"code": codes[1]}, follow=True)
    assert b"Added 3 credits" in response.content
    assert wallet_get(user=bob).balance_micro == 3_000_000


def test_it_creates_a_batch_in_the_admin_and_hands_the_codes_over_once(admin_client):
    response = admin_client.post(
        "/admin/billing/redemptionbatch/add/",
        {"name": "promo", "credits": "2.5", "count": "4", "max_uses": "1", "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = response.content.decode().strip().splitlines()
    assert rows[0] == "code,credits,max_uses,expires_at,batch"
    assert len(rows) == 5
    made = RedemptionBatch.objects.get(name="promo")
    assert (made.credits_micro, made.codes.count()) == (2_500_000, 4)
