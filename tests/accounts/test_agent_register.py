import pytest
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, User
from apps.billing.models import Wallet

pytestmark = pytest.mark.django_db


def test_it_creates_an_agent_account_with_a_working_key(anon_api):
    response = anon_api.post("/api/v1/agent_register.php", {"name": "My Agent"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"success", "account_type", "user_id", "api_key", "credits"}
    assert body["success"] is True and body["account_type"] == "agent" and body["credits"] == 0
    user = User.objects.get(pk=body["user_id"])
    assert user.account_type == "agent" and user.display_name == "My Agent" and not user.has_usable_password()
    assert Wallet.objects.filter(user=user, balance_micro=0).exists()
    assert not ApiKey.objects.filter(key_hash=body["api_key"]).exists()

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['api_key']}")
    assert client.get("/api/v1/credits.php").json() == {
        "success": True,
        "credits": 0,
        "account_type": "agent",
    }


def test_it_accepts_an_empty_body_and_an_email(anon_api):
    assert anon_api.post("/api/v1/agent_register.php", {}, format="json").status_code == 201
    response = anon_api.post("/api/v1/agent_register.php", {"name": "B", "email": "b@example.com"}, format="json")
    assert User.objects.get(pk=response.json()["user_id"]).email == "b@example.com"


def test_it_gives_sign_up_credits_to_agents_too(anon_api, settings):
    settings.SIGNUP_FREE_CREDITS = "0.25"
    body = anon_api.post("/api/v1/agent_register.php", {"name": "A"}, format="json").json()
    assert body["credits"] == 0.25


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "A", "admin": True}, "admin"),
        ({"email": "not-an-email"}, "email"),
        ({"name": "x" * 101}, "name"),
    ],
)
def test_it_rejects_bad_bodies_and_creates_nothing(anon_api, payload, field):
    response = anon_api.post("/api/v1/agent_register.php", payload, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_request" and body["details"][0]["field"] == field
    assert not User.objects.exists()


def test_it_rejects_malformed_json(anon_api):
    response = anon_api.post("/api/v1/agent_register.php", "{nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_it_rate_limits_registration_per_ip(anon_api, settings):
    settings.RATE_AGENT_REGISTER = "3/hour"
    for _ in range(3):
        assert anon_api.post("/api/v1/agent_register.php", {}, format="json").status_code == 201
    response = anon_api.post("/api/v1/agent_register.php", {}, format="json")
    assert response.status_code == 429
    assert response.json()["error"] == "rate_limited" and int(response["Retry-After"]) > 0
    other_ip = anon_api.post("/api/v1/agent_register.php", {}, format="json", REMOTE_ADDR="203.0.113.9")
    assert other_ip.status_code == 201
    assert User.objects.count() == 4
