"""The account pages: allauth in the site's layout, email verification, password reset, profile, closing an
account, TOTP two-factor and optional social login."""

import re

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value, yield_hotp_counters_from_time
from django.core import mail
from django.test import Client

from apps.accounts.models import ApiKey, User
from apps.accounts.services import api_key_create
from apps.billing.services import wallet_get

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-pass-phrase-9"


def browser() -> Client:
    return Client(enforce_csrf_checks=True)


def csrf_post(client: Client, url: str, data: dict, **extra):
    if "csrftoken" not in client.cookies:
        client.get("/accounts/login/")
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}, **extra)


def log_in(client: Client, email: str, password: str = "pw-for-tests-1"):  # noqa: S107 - the personas' password
    client.get("/accounts/login/")
    return csrf_post(client, "/accounts/login/", {"login": email, "password": password})


def assert_site_layout(response):
    names = [template.name for template in response.templates]
    assert "base.html" in names and "allauth/layouts/base.html" in names, names
    assert b'<main id="main"' in response.content and b"css/pages.css" in response.content


@pytest.mark.parametrize(
    "url",
    ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", "/accounts/password/reset/done/",
     "/accounts/confirm-email/"],
)  # fmt: skip
def test_every_public_account_page_renders_in_the_site_layout(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert_site_layout(response)


@pytest.mark.parametrize(
    "url",
    ["/accounts/email/", "/accounts/password/change/", "/accounts/2fa/", "/accounts/logout/", "/accounts/3rdparty/",
     "/profile.php"],
)  # fmt: skip
def test_every_signed_in_account_page_renders_in_the_site_layout(client, alice, url):
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 200
    assert_site_layout(response)


@pytest.mark.parametrize("url", ["/profile.php", "/accounts/email/", "/accounts/password/change/", "/accounts/2fa/"])
def test_account_settings_redirect_anonymous_visitors_to_log_in(client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_mandatory_verification_sends_an_email_whose_link_verifies_the_address(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    client = browser()
    client.get("/accounts/signup/")
    response = csrf_post(
        client, "/accounts/signup/", {"email": "new@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/confirm-email/"
    user = User.objects.get(email="new@example.com")
    assert wallet_get(user=user).balance_micro == 0
    assert not EmailAddress.objects.get(user=user).verified
    [email] = mail.outbox
    assert email.to == ["new@example.com"] and email.subject.startswith("[KiwiWhale] ")
    assert "Hello from KiwiWhale" in email.body
    link = re.search(r"http://testserver(/accounts/confirm-email/[^\s]+/)", email.body).group(1)

    # Until verified, logging in sends another email instead of a session.
    anonymous = browser()
    log_in(anonymous, "new@example.com", PASSWORD)
    assert "_auth_user_id" not in anonymous.session

    confirm = client.get(link)
    assert confirm.status_code == 200
    assert_site_layout(confirm)
    assert client.post(link).status_code == 403  # CSRF: the confirmation is a POST with the token
    done = csrf_post(client, link, {})
    assert done.status_code == 302
    assert EmailAddress.objects.get(user=user).verified

    fresh = browser()
    assert log_in(fresh, "new@example.com", PASSWORD).status_code == 302
    assert fresh.session["_auth_user_id"] == str(user.pk)


def test_a_password_reset_emails_a_link_that_sets_a_new_password(alice):
    client = browser()
    client.get("/accounts/password/reset/")
    assert csrf_post(client, "/accounts/password/reset/", {"email": "alice@example.com"}).status_code == 302
    [email] = mail.outbox
    link = re.search(r"http://testserver(/accounts/password/reset/key/[^\s]+/)", email.body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    assert_site_layout(form_page)
    set_url = form_page.redirect_chain[-1][0]
    response = csrf_post(client, set_url, {"password1": "brand-new-phrase-42", "password2": "brand-new-phrase-42"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("brand-new-phrase-42")


def test_an_unknown_email_gets_no_reset_link_and_no_hint(client, db):
    client = browser()
    client.get("/accounts/password/reset/")
    assert csrf_post(client, "/accounts/password/reset/", {"email": "nobody@example.com"}).status_code == 302
    assert all("/accounts/password/reset/key/" not in message.body for message in mail.outbox)


def test_the_profile_saves_the_display_name_with_csrf_only(alice):
    client = browser()
    client.force_login(alice)
    page = client.get("/profile.php")
    assert b"alice@example.com" in page.content and b"Close your account" in page.content
    assert client.post("/profile.php", {"display_name": "Alice W."}).status_code == 403
    response = csrf_post(client, "/profile.php", {"display_name": "  Alice   <b>W.</b> "})
    assert response.status_code == 302 and response["Location"] == "/profile.php"
    alice.refresh_from_db()
    assert alice.display_name == "Alice <b>W.</b>"
    assert b"Alice &lt;b&gt;W.&lt;/b&gt;" in client.get("/profile.php").content


def test_closing_an_account_needs_the_password_and_csrf(alice):
    _, raw_key = api_key_create(user=alice, name="bot")
    client = browser()
    client.force_login(alice)
    client.get("/profile.php")
    assert client.post("/account/deactivate/", {"password": "pw-for-tests-1", "confirm": "on"}).status_code == 403
    wrong = csrf_post(client, "/account/deactivate/", {"password": "nope", "confirm": "on"})
    assert wrong.status_code == 400 and b"This is not your password." in wrong.content
    unconfirmed = csrf_post(client, "/account/deactivate/", {"password": "pw-for-tests-1"})
    assert unconfirmed.status_code == 400
    alice.refresh_from_db()
    assert alice.is_active

    response = csrf_post(client, "/account/deactivate/", {"password": "pw-for-tests-1", "confirm": "on"})
    assert response.status_code == 302 and response["Location"] == "/"
    alice.refresh_from_db()
    assert not alice.is_active
    assert not ApiKey.objects.filter(user=alice, revoked_at__isnull=True).exists()
    assert client.get("/profile.php").status_code == 302  # logged out
    api = Client()
    assert api.get("/api/v1/credits.php", HTTP_AUTHORIZATION=f"Bearer {raw_key}").status_code == 401
    again = browser()
    log_in(again, "alice@example.com")
    assert "_auth_user_id" not in again.session


def test_the_totp_setup_page_is_reachable_and_two_factor_guards_the_next_log_in(alice):
    client = browser()
    assert log_in(client, "alice@example.com").status_code == 302
    # Turning on 2FA asks for the password again first (allauth's reauthentication), then shows the setup page.
    ask = client.get("/accounts/2fa/totp/activate/")
    assert ask.status_code == 302 and ask["Location"].startswith("/accounts/reauthenticate/")
    reauthenticate = client.get(ask["Location"])
    assert reauthenticate.status_code == 200
    assert_site_layout(reauthenticate)
    confirmed = csrf_post(client, ask["Location"], {"password": "pw-for-tests-1"})
    assert confirmed.status_code == 302 and confirmed["Location"] == "/accounts/2fa/totp/activate/"
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    assert_site_layout(page)
    assert b"auth-qr" in page.content
    secret = page.context["form"].secret
    counter = next(iter(yield_hotp_counters_from_time()))
    code = format_hotp_value(hotp_value(secret, counter))
    assert (
        csrf_post(
            client, "/accounts/2fa/totp/activate/", {"code": "000000" if code != "000000" else "111111"}
        ).status_code
        == 200
    )
    assert not Authenticator.objects.filter(user=alice).exists()
    response = csrf_post(client, "/accounts/2fa/totp/activate/", {"code": code})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()
    assert b"Protect your account with an authenticator app" not in client.get("/profile.php").content

    second = browser()
    challenge = log_in(second, "alice@example.com")
    assert challenge.status_code == 302 and challenge["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in second.session
    challenge_page = second.get("/accounts/2fa/authenticate/")
    assert challenge_page.status_code == 200
    assert_site_layout(challenge_page)
    assert csrf_post(second, "/accounts/2fa/authenticate/", {"code": code}).status_code == 302
    assert second.session["_auth_user_id"] == str(alice.pk)


def test_social_login_is_offered_only_when_configured(client, settings, db):
    settings.SOCIALACCOUNT_PROVIDERS = {}
    assert b"GitHub" not in client.get("/accounts/login/").content
    settings.SOCIALACCOUNT_PROVIDERS = {"github": {"APP": {"client_id": "id", "secret": "s"}}}
    login_page = client.get("/accounts/login/")
    assert b"GitHub" in login_page.content and b"/accounts/github/login/" in login_page.content
    # Starting it asks for a POST (CSRF-protected) before anything leaves for GitHub.
    start = client.get("/accounts/github/login/?process=login")
    assert start.status_code == 200
    assert_site_layout(start)


def test_an_account_made_through_social_login_gets_a_wallet(rf, settings):
    from allauth.socialaccount.adapter import get_adapter
    from allauth.socialaccount.models import SocialAccount, SocialLogin
    from django.contrib.sessions.middleware import SessionMiddleware

    settings.SIGNUP_FREE_CREDITS = "0.25"
    request = rf.get("/")
    SessionMiddleware(lambda r: None).process_request(request)
    sociallogin = SocialLogin(
        user=User(email="gh@example.com", username="gh"), account=SocialAccount(provider="github", uid="42")
    )
    user = get_adapter(request).save_user(request, sociallogin)
    assert wallet_get(user=user).balance_micro == 250_000
