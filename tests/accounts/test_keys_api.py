"""keys.php, key_update.php, key_revoke.php, key_rotate.php: keys an agent manages, with limits and scopes."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create

pytestmark = pytest.mark.django_db


def api(raw: str, **extra) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def create(client, **body):
    return client.post("/api/v1/keys.php", body, format="json")


def test_it_creates_a_key_with_limits_and_shows_it_once(alice_api):
    response = create(
        alice_api,
        name="sub-agent",
        scopes=["generate"],
        spend_limit_day_credits=1.5,
        spend_limit_total_credits=10,
        allowed_models=["z-image", "gpt-image-2/*"],
        allowed_ips=["203.0.113.7", "10.0.0.0/8"],
        rpm_limit=30,
        concurrency_limit=2,
        expires_at="2099-01-01T00:00:00Z",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    raw = body["api_key"]
    key = body["key"]
    assert raw.startswith(key["prefix"]) and key["name"] == "sub-agent" and key["scopes"] == ["generate"]
    assert key["spend_limit_day_credits"] == 1.5 and key["spend_limit_month_credits"] is None
    assert key["spend_limit_total_credits"] == 10
    assert key["allowed_ips"] == ["203.0.113.7/32", "10.0.0.0/8"] and key["rpm_limit"] == 30
    assert key["spend"] == {"day": 0, "month": 0, "total": 0, "active": 0} and key["active"] is True
    stored = ApiKey.objects.get(pk=key["id"])
    assert stored.spend_limit_day_micro == 1_500_000 and stored.concurrency_limit == 2
    listing = alice_api.get("/api/v1/keys.php").json()
    assert raw not in str(listing)
    assert {k["prefix"] for k in listing["keys"]} >= {key["prefix"]}
    assert set(listing["keys"][0]) == set(key)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"scopes": ["admin"]}, "scopes"),
        ({"allowed_ips": ["not-an-ip"]}, "allowed_ips"),
        ({"allowed_models": ["gpt*"]}, "allowed_models"),
        ({"spend_limit_day_credits": -1}, "spend_limit_day_credits"),
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_it_refuses_bad_limits_and_creates_nothing(alice, alice_api, body, field):
    before = ApiKey.objects.count()
    response = create(alice_api, **body)
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_request" and response.json()["details"][0]["field"].startswith(field)
    assert ApiKey.objects.count() == before


def test_a_key_without_the_keys_scope_cannot_manage_keys(alice):
    _, raw = api_key_create(user=alice, scopes=["generate"])
    for response in (api(raw).get("/api/v1/keys.php"), create(api(raw), name="x")):
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope" and response.json()["scope"] == "keys"


def test_a_key_cannot_mint_a_key_with_scopes_or_limits_beyond_its_own(alice):
    parent, raw = api_key_create(
        user=alice,
        scopes=["generate", "keys"],
        spend_limit_day_micro=2_000_000,
        allowed_models=["gpt-image-2/*"],
        allowed_ips=["10.0.0.0/8"],
        expires_at=timezone.now() + timedelta(days=1),
    )
    client = api(raw, REMOTE_ADDR="10.1.2.3")
    ok = {
        "scopes": ["generate"],
        "spend_limit_day_credits": 1,
        "allowed_models": ["gpt-image-2/text-to-image"],
        "allowed_ips": ["10.1.0.0/16"],
        "expires_at": (timezone.now() + timedelta(hours=1)).isoformat(),
    }
    escalations = [
        ({"scopes": ["generate", "billing"]}, "scopes"),
        ({"spend_limit_day_credits": 3}, "spend_limit_day_credits"),
        ({"spend_limit_day_credits": None}, "spend_limit_day_credits"),
        ({"allowed_models": ["z-image"]}, "allowed_models"),
        ({"allowed_models": []}, "allowed_models"),
        ({"allowed_ips": ["0.0.0.0/0"]}, "allowed_ips"),
        ({"expires_at": (timezone.now() + timedelta(days=2)).isoformat()}, "expires_at"),
    ]
    for change, field in escalations:
        response = create(client, **{**ok, **change})
        assert response.status_code == 403, (change, response.content)
        assert response.json()["error"] == "key_escalation" and response.json()["field"] == field
    assert ApiKey.objects.filter(user=alice).count() == 1
    child = create(client, **ok).json()["key"]
    assert child["parent_id"] == parent.pk
    # Nor can a key loosen its own limits, or a child's beyond its own.
    own = client.post("/api/v1/key_update.php", {"key_id": parent.pk, "rpm_limit": None}, format="json")
    assert own.status_code == 403 and own.json()["error"] == "key_escalation"
    looser = client.post("/api/v1/key_update.php", {"key_id": child["id"], "spend_limit_day_credits": 5}, format="json")
    assert looser.status_code == 403 and looser.json()["error"] == "key_escalation"
    tighter = client.post(
        "/api/v1/key_update.php", {"key_id": child["id"], "spend_limit_day_credits": 0.5}, format="json"
    )
    assert tighter.status_code == 200 and tighter.json()["key"]["spend_limit_day_credits"] == 0.5


def test_a_key_sees_and_manages_only_its_own_lineage(alice, charlie):
    _, raw = api_key_create(user=alice, name="agent")
    sibling, _ = api_key_create(user=alice, name="sibling")
    other, _ = api_key_create(user=charlie, name="other")
    client = api(raw)
    child = create(client, name="child").json()["key"]
    names = {key["name"] for key in client.get("/api/v1/keys.php").json()["keys"]}
    assert names == {"agent", "child"}
    for key_id in (sibling.pk, other.pk, other.prefix):
        response = client.post("/api/v1/key_revoke.php", {"key_id": key_id}, format="json")
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    assert ApiKey.objects.get(pk=sibling.pk).is_active and ApiKey.objects.get(pk=other.pk).is_active
    # The session of the account's human sees every key.
    session = APIClient()
    session.force_login(alice)
    assert {k["name"] for k in session.get("/api/v1/keys.php").json()["keys"]} == {"agent", "sibling", "child"}
    assert child["parent_id"] is not None


def test_revoking_a_key_revokes_the_keys_it_made_at_once(alice):
    parent, raw = api_key_create(user=alice)
    child_raw = create(api(raw), name="child").json()["api_key"]
    assert api(child_raw).get("/api/v1/credits.php").status_code == 200  # cached now
    response = api(raw).post("/api/v1/key_revoke.php", {"key_id": parent.prefix}, format="json")
    assert response.status_code == 200 and response.json()["key"]["active"] is False
    assert api(child_raw).get("/api/v1/credits.php").status_code == 401
    assert api(raw).get("/api/v1/credits.php").status_code == 401


def test_rotation_gives_a_new_key_and_revokes_the_old_one_now(alice):
    old, raw = api_key_create(user=alice, name="bot", scopes=["generate", "keys"], rpm_limit=100)
    assert api(raw).get("/api/v1/credits.php").status_code == 200  # cached
    response = api(raw).post("/api/v1/key_rotate.php", {"key_id": old.pk}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"]["name"] == "bot" and body["key"]["scopes"] == ["generate", "keys"]
    assert body["key"]["rpm_limit"] == 100 and body["old_key"]["active"] is False
    assert api(raw).get("/api/v1/credits.php").status_code == 401
    assert api(body["api_key"]).get("/api/v1/credits.php").status_code == 200
    again = api(body["api_key"]).post("/api/v1/key_rotate.php", {"key_id": old.pk}, format="json")
    assert again.status_code == 409 and again.json()["error"] == "key_not_active"


def test_rotation_with_a_grace_period_keeps_the_old_key_until_it_expires(alice):
    old, raw = api_key_create(user=alice, name="bot")
    child_raw = create(api(raw), name="child").json()["api_key"]
    body = api(raw).post("/api/v1/key_rotate.php", {"key_id": old.pk, "grace_seconds": 60}, format="json").json()
    assert api(raw).get("/api/v1/credits.php").status_code == 200
    assert 55 <= (ApiKey.objects.get(pk=old.pk).expires_at - timezone.now()).total_seconds() <= 60
    ApiKey.objects.filter(pk=old.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    from apps.accounts.services import api_key_cache_forget

    api_key_cache_forget(key_hashes=[old.key_hash])
    expired = api(raw).get("/api/v1/credits.php")
    assert expired.status_code == 401 and expired.json()["error"] == "key_expired"
    # The old key's children live on under the new key, which carries the lineage.
    api(body["api_key"]).post("/api/v1/key_revoke.php", {"key_id": old.pk}, format="json")
    assert api(child_raw).get("/api/v1/credits.php").status_code == 200


def test_limit_changes_take_effect_at_once_though_the_key_was_cached(alice):
    key, raw = api_key_create(user=alice)
    assert api(raw).get("/api/v1/credits.php").status_code == 200  # cached
    session = APIClient()
    session.force_login(alice)
    response = session.post(
        "/api/v1/key_update.php", {"key_id": key.pk, "allowed_ips": ["192.0.2.0/24"]}, format="json"
    )
    assert response.status_code == 200, response.content
    refused = api(raw).get("/api/v1/credits.php")
    assert refused.status_code == 403 and refused.json()["error"] == "ip_not_allowed"
    assert api(raw, REMOTE_ADDR="192.0.2.10").get("/api/v1/credits.php").status_code == 200
    session.post("/api/v1/key_update.php", {"key_id": key.pk, "allowed_ips": None}, format="json")
    assert api(raw).get("/api/v1/credits.php").status_code == 200


def test_an_expired_key_is_refused_with_its_own_code_though_it_was_cached(alice, monkeypatch):
    _, raw = api_key_create(user=alice, expires_at=timezone.now() + timedelta(seconds=30))
    assert api(raw).get("/api/v1/credits.php").status_code == 200  # cached, with its expiry
    later = timezone.now() + timedelta(seconds=31)
    monkeypatch.setattr(timezone, "now", lambda: later)  # the clock moves on (a test cannot wait 30 s)
    response = api(raw).get("/api/v1/credits.php")
    assert response.status_code == 401 and response.json()["error"] == "key_expired"


def test_a_key_gets_rate_limited_past_its_requests_per_minute(alice):
    _, raw = api_key_create(user=alice, rpm_limit=3)
    client = api(raw)
    assert [client.get("/api/v1/credits.php").status_code for _ in range(3)] == [200, 200, 200]
    response = client.get("/api/v1/credits.php")
    assert response.status_code == 429 and response.json()["error"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_scopes_decide_what_a_key_may_call(alice, catalog):
    _, raw = api_key_create(user=alice, scopes=["generate"])
    client = api(raw)
    assert client.get("/api/v1/credits.php").status_code == 200  # reading needs no scope
    assert client.get("/api/v1/usage.php").status_code == 200
    topup = client.post("/api/v1/agent_topup.php", {"credits": 10}, format="json")
    assert topup.status_code == 403 and topup.json() == {
        "success": False,
        "error": "insufficient_scope",
        "message": "This API key lacks the 'billing' scope this endpoint needs.",
        "scope": "billing",
    }
    assert client.post("/api/v1/redeem.php", {"code": "X"}, format="json").json()["error"] == "insufficient_scope"
    _, billing_only = api_key_create(user=alice, scopes=["billing"])
    generated = api(billing_only).post("/api/v1/generate.php", {"model": "z-image", "prompt": "a"}, format="json")
    assert generated.status_code == 403 and generated.json()["scope"] == "generate"


def test_every_api_route_has_a_scope_rule():
    from django.urls import get_resolver

    from apps.api.permissions import VIEW_SCOPES

    resolver = get_resolver()
    api_patterns = next(p for p in resolver.url_patterns if getattr(p, "namespace", "") == "api").url_patterns
    for pattern in api_patterns:
        view = pattern.callback
        name = getattr(view, "cls", getattr(view, "view_class", None)).__name__
        assert name in VIEW_SCOPES, f"{pattern.pattern} ({name}) has no scope in apps/api/permissions.VIEW_SCOPES"
        view_class = getattr(view, "cls", getattr(view, "view_class", None))
        if AllowAny in view_class.permission_classes:  # a public view runs no permission: it can ask no scope
            assert VIEW_SCOPES[name] is None, f"{name} is public; its scope in VIEW_SCOPES would never be asked"


def test_it_caps_the_active_keys_of_an_account(alice, monkeypatch):
    from apps.accounts import services

    monkeypatch.setattr(services, "API_KEYS_ACTIVE_MAX", 2)
    _, raw = api_key_create(user=alice)
    assert create(api(raw)).status_code == 201
    response = create(api(raw))
    assert response.status_code == 409 and response.json()["error"] == "too_many_keys"


def test_keys_nest_at_most_ten_deep_and_a_huge_id_is_just_not_found(alice):
    _, raw = api_key_create(user=alice)
    for _ in range(9):
        raw = create(api(raw), name="deeper").json()["api_key"]
    response = create(api(raw), name="too deep")
    assert response.status_code == 409 and response.json()["error"] == "too_many_keys"
    huge = api(raw).post("/api/v1/key_revoke.php", {"key_id": "9" * 30}, format="json")
    assert huge.status_code == 404
