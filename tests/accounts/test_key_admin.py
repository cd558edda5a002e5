"""The ApiKey admin shows each key's limits and spend and edits the limits, in effect at once."""

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create

pytestmark = pytest.mark.django_db


def test_the_admin_shows_and_edits_a_keys_limits_at_once(admin_client, alice):
    key, raw = api_key_create(user=alice, name="bot", spend_limit_day_micro=250_000)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/credits.php").status_code == 200  # cached
    listing = admin_client.get("/admin/accounts/apikey/").content.decode()
    assert "day ≤ 0.25" in listing
    page = admin_client.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert 'value="0.25"' in page and "0 / 0 / 0; 0 running" in page
    body = {
        "name": "bot",
        "scopes": '["generate"]',
        "spend_limit_day": "",
        "spend_limit_month": "3",
        "spend_limit_total": "",
        "allowed_models": "[]",
        "allowed_ips": '["192.0.2.0/24"]',
        "rpm_limit": "",
        "concurrency_limit": "4",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    response = admin_client.post(f"/admin/accounts/apikey/{key.pk}/change/", body)
    assert response.status_code == 302, response.content.decode()[:2000]
    key.refresh_from_db()
    assert key.spend_limit_day_micro is None and key.spend_limit_month_micro == 3_000_000
    assert key.scopes == ["generate"] and key.concurrency_limit == 4
    assert api.get("/api/v1/credits.php").json()["error"] == "ip_not_allowed"
    bad = admin_client.post(f"/admin/accounts/apikey/{key.pk}/change/", {**body, "allowed_ips": '["nope"]'})
    assert bad.status_code == 200 and ApiKey.objects.get(pk=key.pk).allowed_ips == ["192.0.2.0/24"]
