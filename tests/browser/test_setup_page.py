"""The operator's setup page in a browser: add an OpenAI-compatible server (the project's fake one), test the
connection for real, save, and find its models in the catalog."""

import pytest
from playwright.sync_api import expect

from apps.accounts.models import User
from tests.browser.conftest import PHONE, log_in, screenshot
from tests.providers.fake_openai import FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_operator_adds_an_openai_compatible_server_and_its_models_light_up(new_context, live_server, catalog):
    User.objects.create_superuser(username="root", email="root@example.com", password="pw-for-tests-1")
    server = FakeOpenAI(api_key=None).start()
    try:
        page = new_context().new_page()
        log_in(page, "root@example.com")
        page.goto("/")
        expect(page.get_by_text("ollama/llama3.2")).to_have_count(0)
        page.goto("/setup.php")
        page.get_by_label("Kind").select_option("openai_compatible")
        page.get_by_label("Slug").fill("ollama")
        page.get_by_label("Base URL").fill(server.base_url)
        page.get_by_role("button", name="Test connection").click()
        expect(page.locator("[data-test-result]")).to_contain_text("serves 2 model(s)")
        expect(page.get_by_label("llama3.2")).to_be_checked()
        page.get_by_label("qwen2.5:0.5b").uncheck()
        screenshot(page, "setup-tested")
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_text("Saved ollama and 1 model(s) added to the catalog")).to_be_visible()
        expect(page.locator("tr[data-provider=ollama]")).to_contain_text("1 of 1 served")
        phone = new_context(viewport=PHONE).new_page()
        log_in(phone, "root@example.com")
        phone.goto("/setup.php")
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        screenshot(phone, "setup-390")

        visitor = new_context().new_page()
        visitor.goto("/")
        expect(visitor.get_by_text("ollama/llama3.2").first).to_be_visible()
        assert "qwen2.5" not in visitor.content()
    finally:
        server.stop()
