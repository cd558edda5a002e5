from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import ApiKey, api_key_hash
from apps.accounts.services import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


def test_it_stores_only_a_hash_and_a_short_prefix(alice):
    key, raw = api_key_create(user=alice, name="laptop")
    assert raw.startswith("kw_") and len(raw) >= 40
    assert key.key_hash == api_key_hash(raw) and raw not in key.key_hash
    assert raw.startswith(key.prefix) and len(key.prefix) == len("kw_") + 8
    assert not ApiKey.objects.filter(prefix=raw).exists()


def test_it_gives_each_key_its_own_random_value(alice):
    raws = {api_key_create(user=alice)[1] for _ in range(20)}
    assert len(raws) == 20
    assert alice.api_keys.count() == 20


def test_it_authenticates_a_bearer_key_in_one_query_then_from_the_shared_cache(alice):
    _, raw = api_key_create(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/credits.php").status_code == 200  # first use writes last_used_at
    key_queries = [q for q in queries.captured_queries if "accounts_apikey" in q["sql"]]
    assert len(key_queries) == 2, key_queries  # the key with its user in one query, and the touch
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/credits.php")
    assert response.status_code == 200
    assert len(queries) == 1  # the wallet only: the key and its user came from Redis


def test_a_revoked_key_is_refused_at_once_though_it_was_cached(alice):
    key, raw = api_key_create(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/credits.php").status_code == 200  # now cached
    from apps.accounts.services import api_key_revoke

    api_key_revoke(key=key)
    assert client.get("/api/v1/credits.php").status_code == 401


def test_a_deactivated_user_is_refused_at_once_though_their_key_was_cached(alice):
    _, raw = api_key_create(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/credits.php").status_code == 200
    alice.is_active = False
    alice.save()  # as the admin does
    assert client.get("/api/v1/credits.php").status_code == 401


def test_a_read_from_before_a_revoke_cannot_put_the_key_back_in_the_cache(alice):
    from django.core.cache import cache

    from apps.accounts.services import _key_cache_name, api_key_authenticate, api_key_cache_forget

    key, raw = api_key_create(user=alice)
    stale = ApiKey.objects.select_related("user").get(pk=key.pk)  # a request read the key…
    api_key_cache_forget(key_hashes=[key.key_hash])  # …then it was revoked…
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    cache.add(_key_cache_name(key.key_hash), stale, timeout=60)  # …and the request tries to cache its copy
    assert api_key_authenticate(raw) is None


def test_it_records_last_use_at_most_once_a_minute(alice):
    key, raw = api_key_create(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.get("/api/v1/credits.php")
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    client.get("/api/v1/credits.php")
    key.refresh_from_db()
    assert key.last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    from django.core.cache import cache

    cache.clear()  # the cached key lives API_KEY_TOUCH_SECONDS: by then it has expired
    client.get("/api/v1/credits.php")
    key.refresh_from_db()
    assert key.last_used_at > first


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer kw_not-a-real-key",
        "Bearer sk_live_somethingelse",
        "Bearer kw_a kw_b",
    ],
)
def test_it_answers_401_in_the_contract_shape_for_bad_credentials(alice, header):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/credits.php")
    assert response.status_code == 401
    body = response.json()
    assert body["success"] is False and body["error"] == "unauthorized" and body["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_rejects_a_revoked_key(alice):
    key, raw = api_key_create(user=alice)
    api_key_revoke(key=key)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/credits.php").status_code == 401


def test_it_rejects_the_key_of_a_deactivated_account(alice):
    _, raw = api_key_create(user=alice)
    alice.is_active = False
    alice.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/credits.php").status_code == 401


def test_it_accepts_a_browser_session_with_csrf(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get("/api/v1/credits.php").json()["account_type"] == "human"
    response = client.post("/api/v1/generate.php", {"model": "x"}, format="json")
    assert response.status_code == 403  # a session write without the CSRF token is refused
    assert response.json()["error"] == "forbidden"


def test_admins_create_a_key_from_the_command_line(alice, capsys):
    from django.core.management import call_command

    call_command("create_api_key", alice.email, "--name", "ci")
    raw = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/credits.php").status_code == 200
    assert alice.api_keys.get().name == "ci"
