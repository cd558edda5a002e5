"""A person who has never seen the site: sign up, verify, make a key, get credits, generate, publish, remix."""

import re

import pytest
from django.core import mail
from django.core.management import call_command
from playwright.sync_api import expect

from apps.accounts.models import ApiKey, User
from apps.generations.models import Job
from apps.showroom.models import Publication
from tests.browser.conftest import PHONE, screenshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

EMAIL = "newcomer@example.com"
PASSWORD = "a-long-pass-phrase-9"
PROMPT = "a kiwi surfing a whale at sunset"


def _sign_up_and_verify(page, live_server) -> None:
    page.goto("/accounts/signup/")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.locator("input[name=password2]").press("Enter")
    page.wait_for_load_state()
    # Verification is mandatory here: the link in the email confirms the address and signs the person in.
    message = next(m for m in mail.outbox if EMAIL in m.to)
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message.body).group(0)
    page.goto(link.replace("http://testserver", live_server.url))
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state()
    expect(page.locator("header form[action='/accounts/logout/'] button")).to_be_visible()


def test_it_takes_a_newcomer_from_sign_up_to_a_published_remixable_image(
    new_context, live_server, celery_worker_process, catalog, settings
):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    page = new_context().new_page()
    page.goto("/")
    screenshot(page, "01-catalog-anonymous")

    _sign_up_and_verify(page, live_server)
    user = User.objects.get(email=EMAIL)
    assert user.account_type == "human" and user.emailaddress_set.get().verified

    # An API key: shown once, with a copy button.
    page.get_by_role("link", name="API Key").first.click()
    page.fill("input[name=name]", "my agent")
    page.get_by_role("button", name="Create key").click()
    raw_key = page.locator("[data-new-key]").inner_text().strip()
    assert raw_key.startswith("kw_") and ApiKey.objects.get(user=user).prefix == raw_key[:11]
    screenshot(page, "02-api-key-created")
    assert f"Bearer {raw_key}" in page.locator("[data-try-it]").inner_text()  # the whole key: it answers 200
    page.reload()  # the POST was redirected: a reload makes no second key, and the key is not shown again
    assert raw_key not in page.content()
    assert ApiKey.objects.filter(user=user).count() == 1

    # The operator grants credits (the admin path); the header shows the new balance.
    call_command("grant_credits", EMAIL, "5", "--reason", "browser test")
    page.goto("/")
    expect(page.locator("header [data-balance-value]")).to_have_text("5")

    # Pick the local text-to-image model, open its playground.
    page.get_by_role("link", name="Procedural Image (local engine)").click()
    expect(page).to_have_url(re.compile(r"/model\.php\?model=local/procedural-image"))
    screenshot(page, "03-model-page")
    tabs = page.get_by_role("navigation", name="Procedural Image (local engine)")
    tabs.get_by_role("link", name="Playground").click()
    expect(page.locator("[data-cost]")).to_have_text("0.01")
    page.get_by_label("Number of images").fill("3")
    expect(page.locator("[data-cost]")).to_have_text("0.03")
    page.get_by_label("Number of images").fill("1")
    expect(page.locator("[data-cost]")).to_have_text("0.01")
    page.get_by_role("textbox", name="Prompt", exact=True).fill(PROMPT)
    page.get_by_label("Width").fill("480")
    page.get_by_label("Height").fill("320")

    page.get_by_role("button", name="Generate").click()
    image = page.locator("[data-outputs] img")
    expect(image).to_be_visible(timeout=60_000)
    page.wait_for_function("() => document.querySelector('[data-outputs] img').naturalWidth > 0")
    assert image.evaluate("img => img.naturalWidth") == 480
    expect(page.locator("[data-job-status]")).to_have_text("completed")
    expect(page.locator("header [data-balance-value]")).to_have_text("4.99")
    expect(page.locator("[data-outputs] a", has_text="Download")).to_have_attribute("download", re.compile(r"\.png$"))
    job = Job.objects.get(user=user)
    assert job.status == "completed" and job.input["prompt"] == PROMPT and job.api_key is None
    screenshot(page, "04-playground-output")

    # Publish to the showroom, from the playground. An instance without the showroom answers 404: the page says so.
    publish_path = "**/api/v1/showroom_publish.php"
    missing = {"success": False, "error": "not_found", "message": "No endpoint at /api/v1/showroom_publish.php."}
    page.route(publish_path, lambda route: route.fulfill(status=404, json=missing))
    page.fill("#publish-title", "Kiwi surf")
    page.get_by_role("button", name="Publish").click()
    status = page.locator("[data-publish-status]")
    expect(status).to_have_text("The showroom is not available on this instance yet.")
    page.unroute(publish_path)
    page.get_by_role("button", name="Publish").click()
    expect(status).to_contain_text("Published")

    # Published with the form as it came (the prompt box unchecked): the prompt stays private.
    assert not Publication.objects.get(job=job).show_prompt

    # An anonymous visitor sees it in the showroom and remixes it: the playground opens with the settings only,
    # and the prompt appears nowhere: not in any page's HTML, nor in the remix API's answer.
    visitor = new_context().new_page()
    visitor.goto("/showroom.php")
    expect(visitor.get_by_text("Kiwi surf").first).to_be_visible()
    assert PROMPT not in visitor.content()
    screenshot(visitor, "05-showroom-anonymous")
    visitor.get_by_text("Kiwi surf").first.click()
    expect(visitor.get_by_role("link", name="Remix").first).to_be_visible()
    assert PROMPT not in visitor.content()
    remix_api = visitor.request.get(f"/api/v1/showroom_remix.php?id={Publication.objects.get(job=job).pk}")
    assert remix_api.ok and PROMPT not in remix_api.text() and "prompt" not in remix_api.json()["input"]
    visitor.get_by_role("link", name="Remix").first.click()
    expect(visitor).to_have_url(re.compile(r"/model-playground\.php\?.*remix="))
    expect(visitor.get_by_label("Width")).to_have_value("480")
    expect(visitor.get_by_role("textbox", name="Prompt", exact=True)).to_have_value("")
    assert PROMPT not in visitor.content()
    expect(visitor.locator("[data-remix-status]")).to_be_visible()
    expect(visitor.get_by_role("link", name="Log in to generate")).to_be_visible()
    screenshot(visitor, "06-remix-prefilled")

    # The history page, where the job can be found again.
    page.goto("/generations.php")
    expect(page.locator(f"li#{job.pk} img")).to_be_visible()
    screenshot(page, "07-generations")


def test_it_uploads_a_file_from_the_picker_and_uses_it_as_input(
    new_context, live_server, celery_worker_process, catalog, tmp_path
):
    from PIL import Image

    from tests.conftest import make_user

    make_user("uploader", credits="1")
    picture = tmp_path / "photo.png"
    Image.new("RGB", (120, 80), (200, 60, 40)).save(picture)

    page = new_context().new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=login]", "uploader@example.com")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.locator("input[name=password]").press("Enter")
    expect(page.locator("header form[action='/accounts/logout/'] button")).to_be_visible()

    page.goto("/model-playground.php?model=local/image-filter")
    page.locator("input[type=file][data-upload-for='f-image_url']").set_input_files(str(picture))
    expect(page.locator("[data-upload-status='f-image_url']")).to_have_text("Uploaded.", timeout=60_000)
    assert "/media/" in page.get_by_role("textbox", name="Image URL").input_value()
    page.get_by_label("Filter", exact=True).select_option(label="grayscale")
    page.get_by_role("button", name="Generate").click()
    image = page.locator("[data-outputs] img")
    expect(image).to_be_visible(timeout=60_000)
    page.wait_for_function("() => document.querySelector('[data-outputs] img').naturalWidth > 0")
    assert image.evaluate("img => img.naturalWidth") == 120


def test_it_shows_field_errors_from_the_api_next_to_the_field(new_context, live_server, catalog):
    from tests.conftest import make_user

    make_user("careful", credits="1")
    page = new_context().new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=login]", "careful@example.com")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.locator("input[name=password]").press("Enter")
    page.wait_for_load_state()
    page.goto("/model-playground.php?model=local/procedural-image")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("   ")  # passes `required` and the schema…
    page.evaluate("document.getElementById('f-width').removeAttribute('max')")
    page.get_by_label("Width").fill("5000")  # …but this breaks the schema's maximum: the API answers 422
    page.get_by_role("button", name="Generate").click()
    error = page.locator("#f-width-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("2048")
    expect(page.get_by_label("Width")).to_have_attribute("aria-invalid", "true")
    assert not Job.objects.exists()


def test_a_visitor_who_tries_to_generate_is_sent_to_log_in(page, live_server, catalog):
    page.goto("/model-playground.php?model=local/procedural-image")
    page.get_by_role("textbox", name="Prompt", exact=True).fill("a dog")
    page.get_by_role("link", name="Log in to generate").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/model-playground\.php"))


def test_the_theme_toggle_is_remembered_and_the_menu_works_by_keyboard(new_context, live_server, catalog):
    page = new_context(viewport=PHONE, color_scheme="light").new_page()
    page.goto("/")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    menu = page.get_by_role("button", name="Menu")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    menu.focus()
    page.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Generations")).to_be_visible()
    screenshot(page, "08-phone-menu-open", full_page=False)
    page.keyboard.press("Escape")
    expect(menu).to_have_attribute("aria-expanded", "false")

    page.get_by_role("button", name="Switch to dark theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    page.reload()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 18, 16)"
    screenshot(page, "09-phone-catalog-dark")

    desktop = new_context(color_scheme="dark").new_page()
    desktop.goto("/model-playground.php?model=local/text-to-speech")
    assert desktop.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(13, 18, 16)"
    screenshot(desktop, "10-playground-dark-os-setting")
    desktop.goto("/docs/agents.php")
    screenshot(desktop, "11-docs-dark")


def test_the_api_reference_renders_this_instances_openapi_document_offline(page, live_server):
    page.goto("/api-reference.php")
    # Redoc comes from the vendored sidecar files; the context aborts any request that leaves the live server.
    expect(page.get_by_role("heading", name="Submit a generation job")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="Poll a job, or list the caller's jobs")).to_be_visible()
    screenshot(page, "12-api-reference", full_page=False)
