import pytest
from django.test import Client

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create
from tests.site.helpers import elements

pytestmark = pytest.mark.django_db


def test_it_creates_a_named_key_and_shows_it_once(client, alice):
    client.force_login(alice)
    posted = client.post("/api_key.php", {"name": "research agent"})
    assert posted.status_code == 302 and posted["Location"] == "/api_key.php"
    response = client.get(posted["Location"])
    assert response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(user=alice)
    shown = [c for c in elements(response.content, "code") if "data-new-key" in c]
    assert len(shown) == 1
    raw = response.content.decode().split("data-new-key>")[1].split("</code>")[0]
    assert raw.startswith("kw_") and raw.startswith(key.prefix) and key.name == "research agent"
    # The key works, and the list never shows it again: only its prefix.
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/v1/credits.php").json()["account_type"] == "human"
    # The "Try it" line holds the whole key, so it answers 200 as it is pasted.
    try_it = response.content.decode().split("data-try-it>")[1].split("</pre>")[0]
    assert f"Bearer {raw}" in try_it
    listing = client.get("/api_key.php").content.decode()
    assert raw not in listing and f"{key.prefix}…" in listing and "research agent" in listing


def test_a_reload_after_creating_a_key_creates_no_second_one(client, alice):
    client.force_login(alice)
    client.post("/api_key.php", {"name": "once"}, follow=True)
    for _ in range(2):
        page = client.get("/api_key.php")  # what a reload of the redirected page sends
        assert page.status_code == 200 and b"data-new-key" not in page.content
    assert ApiKey.objects.filter(user=alice).count() == 1


def test_it_names_a_key_default_when_no_name_is_given(client, alice):
    client.force_login(alice)
    client.post("/api_key.php", {"name": "  "})
    assert ApiKey.objects.get(user=alice).name == "default"


def test_it_refuses_a_name_that_is_too_long(client, alice):
    client.force_login(alice)
    response = client.post("/api_key.php", {"name": "x" * 101})
    assert response.status_code == 400
    assert not ApiKey.objects.filter(user=alice).exists()
    assert b"at most 100 characters" in response.content


def test_it_caps_the_number_of_active_keys(client, alice, settings):
    from apps.accounts import services

    for index in range(services.API_KEYS_ACTIVE_MAX):
        api_key_create(user=alice, name=f"k{index}")
    client.force_login(alice)
    response = client.post("/api_key.php", {"name": "one too many"})
    assert response.status_code == 400 and b"revoke one" in response.content
    assert ApiKey.objects.filter(user=alice).count() == services.API_KEYS_ACTIVE_MAX


def test_it_lists_prefix_and_last_use_of_the_accounts_keys_only(client, alice, charlie):
    used, raw = api_key_create(user=alice, name="used")
    api_key_create(user=alice, name="fresh")
    theirs, _ = api_key_create(user=charlie, name="charlie's")
    Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/credits.php")
    client.force_login(alice)
    html = client.get("/api_key.php").content.decode()
    assert "used" in html and "fresh" in html and "Never" in html
    assert theirs.prefix not in html and "charlie" not in html
    times = [t["datetime"] for t in elements(html, "time")]
    used.refresh_from_db()
    assert used.last_used_at.isoformat(timespec="seconds")[:19] in " ".join(times)


def test_it_revokes_a_key(client, alice):
    key, raw = api_key_create(user=alice, name="old")
    client.force_login(alice)
    response = client.post("/account/keys/revoke/", {"key_id": key.pk}, follow=True)
    assert b"Revoked" in response.content
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {raw}").get("/api/v1/credits.php").status_code == 401
    assert not [f for f in elements(response.content, "form") if f.get("action") == "/account/keys/revoke/"]


def test_nobody_can_revoke_another_accounts_key(client, alice, charlie):
    key, _ = api_key_create(user=charlie)
    client.force_login(alice)
    assert client.post("/account/keys/revoke/", {"key_id": key.pk}).status_code == 404
    assert client.post("/account/keys/revoke/", {"key_id": "nonsense"}).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_every_form_of_the_page_needs_the_csrf_token(alice):
    key, _ = api_key_create(user=alice)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    html = browser.get("/api_key.php").content
    post_forms = [f for f in elements(html, "form") if f.get("method") == "post"]
    assert {f["action"] for f in post_forms} >= {"/api_key.php", "/account/keys/revoke/"}
    assert browser.post("/api_key.php", {"name": "no token"}).status_code == 403
    assert browser.post("/account/keys/revoke/", {"key_id": key.pk}).status_code == 403
    assert ApiKey.objects.filter(user=alice).count() == 1 and ApiKey.objects.get().revoked_at is None
    token = browser.cookies["csrftoken"].value
    assert browser.post("/api_key.php", {"name": "with token", "csrfmiddlewaretoken": token}).status_code == 302


def test_a_visitor_is_sent_to_log_in(client, alice):
    assert client.get("/api_key.php")["Location"] == "/accounts/login/?next=/api_key.php"
    assert client.post("/api_key.php", {"name": "x"}).status_code == 302
    assert not ApiKey.objects.exists()


def test_the_copy_button_targets_the_new_key(client, alice):
    client.force_login(alice)
    html = client.post("/api_key.php", {"name": "x"}, follow=True).content
    assert any(b.get("data-copy-target") == "#new-key" for b in elements(html, "button"))
    assert any(c.get("id") == "new-key" for c in elements(html, "code"))


def test_it_creates_a_key_with_limits_and_shows_its_spend(client, alice, catalog):
    client.force_login(alice)
    posted = client.post(
        "/api_key.php",
        {
            "name": "limited",
            "scopes": ["generate"],
            "spend_limit_day": "0.5",
            "allowed_models": "z-image, local/*",
            "allowed_ips": "10.0.0.0/8",
            "rpm_limit": "20",
            "expires_at": "2099-01-01T00:00",
        },
    )
    assert posted.status_code == 302
    key = ApiKey.objects.get(user=alice)
    assert key.scopes == ["generate"] and key.spend_limit_day_micro == 500_000 and key.rpm_limit == 20
    assert key.allowed_models == ["z-image", "local/*"] and key.allowed_ips == ["10.0.0.0/8"]
    assert key.expires_at.year == 2099 and key.expires_at.utcoffset().total_seconds() == 0
    from apps.catalog.models import AIModel
    from apps.generations.services import job_create

    job_create(
        user=alice, model=AIModel.objects.get(public_model="local/procedural-image"), input={"prompt": "a"}, api_key=key
    )
    page = client.get("/api_key.php").content.decode()
    spend = page.split("data-key-spend>")[1].split("</td>")[0]
    assert "0.01 / 0.01 / 0.01" in " ".join(spend.split()) and "≤ 0.5 a day" in spend


def test_it_refuses_bad_limits_with_the_form_and_creates_nothing(client, alice):
    client.force_login(alice)
    response = client.post("/api_key.php", {"name": "x", "allowed_ips": "nope", "spend_limit_total": "-1"})
    assert response.status_code == 400
    assert b"is not an IP address" in response.content and not ApiKey.objects.filter(user=alice).exists()
