import pytest
from django.test import Client

from apps.accounts.models import User
from apps.billing.services import wallet_get

pytestmark = pytest.mark.django_db


def test_the_home_page_lists_the_servable_models(client, catalog):
    response = client.get("/")
    assert response.status_code == 200
    assert b"local/procedural-image" in response.content and b"z-image" not in response.content


def test_the_health_check_answers(client):
    assert client.get("/healthz").json() == {"ok": True}


def test_a_person_signs_up_through_allauth_and_gets_a_human_account_with_a_wallet(settings):
    settings.SIGNUP_FREE_CREDITS = "0.5"
    browser = Client(enforce_csrf_checks=True)
    page = browser.get("/accounts/signup/")
    assert page.status_code == 200
    response = browser.post(
        "/accounts/signup/",
        {
            "email": "new@example.com",
            "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9",
            "csrfmiddlewaretoken": page.cookies["csrftoken"].value,
        },
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.account_type == "human"
    assert wallet_get(user=user).balance_micro == 500_000
    assert browser.get("/api/v1/credits.php").json() == {"success": True, "credits": 0.5, "account_type": "human"}


def test_the_signup_form_refuses_a_post_without_csrf():
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/accounts/signup/", {"email": "x@example.com", "password1": "p", "password2": "p"})
    assert response.status_code == 403
    assert not User.objects.exists()


def test_unknown_pages_answer_404(client):
    assert client.get("/nothing-here").status_code == 404
