"""The operator's first run: /setup.php (staff only) with a real connection test, the one-time setup link, and
the admin's Grant credits action."""

import re

import pytest
from django.core.management import call_command
from django.test import Client

from apps.accounts.models import User
from apps.billing.models import LedgerEntry, Wallet
from apps.catalog.models import AIModel, ProviderAccount
from tests.providers.fake_openai import FakeOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def ollama():
    server = FakeOpenAI(api_key=None).start()  # keyless, as Ollama
    yield server
    server.stop()


@pytest.fixture
def staff(db):
    user = User.objects.create_superuser(username="root", email="root@example.com", password="pw-for-tests-1")
    client = Client()
    client.force_login(user)
    return client


def _form(slug="ollama", kind="openai_compatible", **extra):
    return {"kind": kind, "slug": slug, "enabled": "on", **extra}


def test_only_staff_see_the_setup_page(client, alice):
    assert client.get("/setup.php")["Location"].startswith("/accounts/login/")
    client.force_login(alice)
    assert client.get("/setup.php").status_code == 404
    assert client.post("/setup.php", _form(action="save")).status_code == 404
    assert not ProviderAccount.objects.filter(slug="ollama").exists()


def test_it_shows_stripe_email_and_free_credits_status(staff, settings):
    settings.STRIPE_ENABLED = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    html = staff.get("/setup.php").content.decode()
    assert "http://testserver/billing/stripe/webhook/" in html
    assert "Not set: <code>STRIPE_SECRET_KEY</code>" in html
    assert "Not sending" in html and "SIGNUP_FREE_CREDITS" in html


def test_test_connection_calls_the_server_and_lists_its_models_without_saving(staff, catalog, ollama):
    response = staff.post("/setup.php", _form(base_url=ollama.base_url, action="test"))
    html = response.content.decode()
    assert response.status_code == 200 and "serves 2 model(s)" in html
    assert 'value="llama3.2"' in html and 'value="qwen2.5:0.5b"' in html
    assert [call.method for call in ollama.calls("/v1/models")] == ["GET"]
    assert not ProviderAccount.objects.filter(slug="ollama").exists()


def test_saving_adds_the_ticked_models_to_the_catalog_and_they_are_served(staff, catalog, ollama):
    form = _form(base_url=ollama.base_url, action="save", serve_models=["llama3.2", "not-on-the-server"])
    response = staff.post("/setup.php", form)
    assert response.status_code == 302
    account = ProviderAccount.objects.get(slug="ollama")
    assert account.enabled and account.kind == "openai_compatible" and account.base_url == ollama.base_url
    assert list(AIModel.objects.filter(public_model__startswith="ollama/").values_list("public_model", flat=True)) == [
        "ollama/llama3.2"
    ]
    catalog_html = Client().get("/").content.decode()
    assert "ollama/llama3.2" in catalog_html and "not-on-the-server" not in catalog_html
    setup_html = staff.get("/setup.php").content.decode()
    assert "1 of 1 served" in setup_html


def test_a_server_that_cannot_be_reached_or_rejects_the_key_is_reported(staff, catalog, ollama):
    ollama.stop()
    html = staff.post("/setup.php", _form(base_url=ollama.base_url, action="test")).content.decode()
    assert "could not be reached" in html
    guarded = FakeOpenAI(api_key="sk-right").start()
    try:
        html = staff.post(
            "/setup.php",
            _form(slug="openai", kind="openai", base_url=guarded.base_url, api_key="sk-wrong", action="test"),
        ).content.decode()
        assert "rejected this instance" in html
    finally:
        guarded.stop()
    assert staff.post("/setup.php", _form(kind="openai", action="test")).status_code == 200


def test_a_bad_form_answers_400(staff):
    assert staff.post("/setup.php", {"kind": "nope", "slug": "a b"}).status_code == 400


def test_setup_link_creates_the_first_superuser_and_logs_in_once(capsys, db):
    call_command("setup_link", "--base-url", "http://testserver")
    out = capsys.readouterr().out
    password = re.search(r"the password (\S+)", out).group(1)
    link = re.search(r"(http://testserver/setup/login/\S+/)", out).group(1)
    admin = User.objects.get(is_superuser=True)
    assert admin.check_password(password) and Wallet.objects.filter(user=admin).exists()
    browser = Client()
    response = browser.get(link.removeprefix("http://testserver"))
    assert response.status_code == 302 and response["Location"] == "/setup.php"
    assert browser.get("/setup.php").status_code == 200
    assert Client().get(link.removeprefix("http://testserver")).status_code == 404  # used once
    call_command("setup_link")
    assert "Created" not in capsys.readouterr().out and User.objects.filter(is_superuser=True).count() == 1


def test_the_admin_grants_credits_to_selected_users_once_per_form(staff, alice, bob):
    changelist = "/admin/accounts/user/"
    form = staff.post(changelist, {"action": "grant_credits", "_selected_action": [alice.pk, bob.pk]})
    grant_id = re.search(r'name="grant_id" value="([^"]+)"', form.content.decode()).group(1)
    body = {
        "action": "grant_credits",
        "_selected_action": [alice.pk, bob.pk],
        "apply": "Grant",
        "credits": "2.5",
        "reason": "welcome",
        "grant_id": grant_id,
    }
    before = {user.pk: Wallet.objects.get(user=user).balance_micro for user in (alice, bob)}
    for _ in range(2):  # a double submit
        assert staff.post(changelist, body).status_code == 302
    for user in (alice, bob):
        assert Wallet.objects.get(user=user).balance_micro == before[user.pk] + 2_500_000
    assert LedgerEntry.objects.filter(idempotency_key__startswith=f"admin-grant:{grant_id}:").count() == 2
    refused = staff.post(changelist, {**body, "credits": "-1"})
    assert refused.status_code == 200 and b"more than 0" in refused.content
