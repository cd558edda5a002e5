"""Behind the documented proxy (NUM_PROXIES=1), allauth's login limit counts each client, not the proxy."""

import pytest

pytestmark = pytest.mark.django_db

PROXY = "127.0.0.1"  # REMOTE_ADDR of every request: the proxy


@pytest.fixture
def behind_one_proxy(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}


def login(client, email: str, password: str, address: str):
    return client.post(
        "/accounts/login/", {"login": email, "password": password}, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=address
    )


def test_failed_logins_of_one_client_do_not_lock_out_another(client, alice, behind_one_proxy):
    for attempt in range(12):
        login(client, f"nobody{attempt}@example.com", "wrong-password", "198.51.100.7")
    # The attacker's address is now limited…
    limited = login(client, "alice@example.com", "pw-for-tests-1", "198.51.100.7")
    assert limited.status_code in (200, 429) and "_auth_user_id" not in client.session
    # …and a different client behind the same proxy signs in with the right password.
    signed_in = login(client, "alice@example.com", "pw-for-tests-1", "203.0.113.20")
    assert signed_in.status_code == 302, signed_in.content[:500]
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_a_short_forwarded_header_does_not_break_the_login_page(client, alice, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 2}
    response = login(client, "alice@example.com", "pw-for-tests-1", "203.0.113.20")
    assert response.status_code == 302
