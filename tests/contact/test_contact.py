"""/contact.php (stored, emailed to the admins, rate-limited, spam trap, CSRF) and /terms.php."""

import pytest
from django.core import mail
from django.test import Client

from apps.contact.models import ContactMessage

pytestmark = pytest.mark.django_db

MESSAGE = {
    "name": "Ada",
    "email": "ada@example.com",
    "subject": "Hello\r\nBcc: victim@example.com",
    "message": "Hi there!",
}


def post_with_csrf(client: Client, data: dict, **extra):
    page = client.get("/contact.php")
    assert page.status_code == 200
    return client.post("/contact.php", {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}, **extra)


@pytest.fixture
def admins(settings):
    settings.ADMINS = [("Ops", "ops@example.com")]


def test_a_message_is_stored_and_emailed_to_the_admins_with_reply_to_the_sender(
    admins, django_capture_on_commit_callbacks
):
    browser = Client(enforce_csrf_checks=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_with_csrf(browser, MESSAGE)
    assert response.status_code == 302 and response["Location"] == "/contact.php"
    stored = ContactMessage.objects.get()
    assert stored.email == "ada@example.com" and stored.message == "Hi there!" and stored.ip_address == "127.0.0.1"
    assert stored.subject == "Hello Bcc: victim@example.com"  # one line: no header injection
    assert stored.emailed_at is not None
    [email] = mail.outbox
    assert email.to == ["ops@example.com"] and email.reply_to == ["ada@example.com"]
    assert "Hi there!" in email.body and "\n" not in email.subject
    assert "we&#x27;ll reply by email" in browser.get("/contact.php").content.decode()


def test_it_keeps_the_message_when_no_admin_email_is_set(settings, django_capture_on_commit_callbacks):
    settings.ADMINS = []
    with django_capture_on_commit_callbacks(execute=True):
        post_with_csrf(Client(enforce_csrf_checks=True), MESSAGE)
    assert ContactMessage.objects.get().emailed_at is None and not mail.outbox


def test_with_no_staff_address_the_visitor_is_told_the_message_is_stored_not_sent(settings):
    settings.ADMINS = []
    browser = Client()
    page = browser.post("/contact.php", MESSAGE, follow=True).content.decode()
    assert "stored for the operator" in page and "reply by email" not in page
    assert ContactMessage.objects.count() == 1


def test_without_real_email_nobody_is_promised_a_reply(admins, settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    with django_capture_on_commit_callbacks(execute=True):
        page = Client().post("/contact.php", MESSAGE, follow=True).content.decode()
    assert "stored for the operator" in page
    assert ContactMessage.objects.get().emailed_at is None


def test_staff_accounts_and_contact_email_receive_messages(settings, django_capture_on_commit_callbacks):
    from apps.accounts.models import User

    settings.ADMINS = []
    User.objects.create_user(username="ops", email="staff@example.com", password="x-long-pass-1", is_staff=True)
    User.objects.create_user(
        username="gone", email="gone@example.com", password="x-long-pass-1", is_staff=True, is_active=False
    )
    with django_capture_on_commit_callbacks(execute=True):
        Client().post("/contact.php", MESSAGE)
    assert mail.outbox[-1].to == ["staff@example.com"]
    settings.CONTACT_EMAIL = "support@example.com"
    with django_capture_on_commit_callbacks(execute=True):
        Client().post("/contact.php", MESSAGE)
    assert mail.outbox[-1].to == ["support@example.com"]


def test_the_admin_header_counts_unread_messages(admin_client):
    ContactMessage.objects.create(email="a@example.com", message="one")
    ContactMessage.objects.create(email="b@example.com", message="two")
    html = admin_client.get("/admin/").content.decode()
    assert 'data-contact-unread="2"' in html and "2 unread" in html


def test_the_form_refuses_a_post_without_csrf(admins):
    response = Client(enforce_csrf_checks=True).post("/contact.php", MESSAGE)
    assert response.status_code == 403 and not ContactMessage.objects.exists()


def test_the_spam_trap_swallows_bots_silently(admins, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_with_csrf(Client(enforce_csrf_checks=True), {**MESSAGE, "website": "http://spam.example"})
    assert response.status_code == 302
    assert not ContactMessage.objects.exists() and not mail.outbox


def test_the_trap_field_is_hidden_from_people(client):
    body = client.get("/contact.php").content.decode()
    assert 'class="trap" aria-hidden="true"' in body and 'tabindex="-1"' in body


def test_it_rate_limits_per_client_address(settings, admins):
    settings.RATE_CONTACT = "2/hour"
    browser = Client(enforce_csrf_checks=True)
    assert post_with_csrf(browser, MESSAGE).status_code == 302
    assert post_with_csrf(browser, MESSAGE).status_code == 302
    limited = post_with_csrf(browser, MESSAGE)
    assert limited.status_code == 429 and b"Too many messages" in limited.content
    assert ContactMessage.objects.count() == 2
    assert post_with_csrf(Client(enforce_csrf_checks=True), MESSAGE, REMOTE_ADDR="192.0.2.10").status_code == 302


def test_it_trusts_x_forwarded_for_only_behind_configured_proxies(settings):
    settings.RATE_CONTACT = "1/hour"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    browser = Client(enforce_csrf_checks=True)
    assert post_with_csrf(browser, MESSAGE, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 302
    # Spoofing the header does not buy a fresh limit when no proxy is declared.
    assert post_with_csrf(browser, MESSAGE, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 429
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    assert post_with_csrf(browser, MESSAGE, HTTP_X_FORWARDED_FOR="198.51.100.3").status_code == 302
    assert ContactMessage.objects.order_by("pk").last().ip_address == "198.51.100.3"


def test_invalid_input_is_shown_back_with_errors(client):
    response = post_with_csrf(Client(enforce_csrf_checks=True), {"email": "not-an-email", "message": ""})
    assert response.status_code == 400
    assert b"Enter a valid email address." in response.content and not ContactMessage.objects.exists()


def test_a_signed_in_person_gets_their_email_prefilled_and_linked(alice, admins, django_capture_on_commit_callbacks):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert b'value="alice@example.com"' in browser.get("/contact.php").content
    with django_capture_on_commit_callbacks(execute=True):
        post_with_csrf(browser, {**MESSAGE, "email": "alice@example.com"})
    assert ContactMessage.objects.get().user == alice
    assert "Account: alice@example.com" in mail.outbox[0].body


def test_the_admin_lists_messages_and_marks_them_handled(admin_client):
    message = ContactMessage.objects.create(email="x@example.com", message="<b>hi</b>")
    assert admin_client.get("/admin/contact/contactmessage/").status_code == 200
    admin_client.post("/admin/contact/contactmessage/", {"action": "mark_handled", "_selected_action": [message.pk]})
    message.refresh_from_db()
    assert message.handled_at is not None


def test_the_terms_page_names_this_instance(client, settings):
    settings.SITE_NAME = "Orca Studio"
    response = client.get("/terms.php")
    assert response.status_code == 200
    body = response.content.decode()
    assert (
        "Orca Studio" in body
        and 'id="privacy"' in body
        and 'id="terms"' in body
        and "base.html" in [template.name for template in response.templates]
    )
