import json

import pytest

from apps.catalog.models import AIModel
from apps.generations.providers import provider_keys_available
from apps.site import docs
from tests.site.helpers import elements

pytestmark = pytest.mark.django_db


@pytest.fixture
def kiwi_host(settings):
    settings.ALLOWED_HOSTS = ["kiwi.example", "testserver"]
    return {"HTTP_HOST": "kiwi.example"}


@pytest.mark.parametrize("slug", ["agents", "auth", "models"])
def test_each_docs_page_is_its_markdown_with_this_instances_base_url(client, slug, kiwi_host):
    response = client.get(f"/docs/{slug}.php", **kiwi_host)
    assert response.status_code == 200
    html = response.content.decode()
    source = docs.doc_path(slug).read_text()
    first_heading = next(line for line in source.splitlines() if line.startswith("# ")).removeprefix("# ")
    assert f">{first_heading}</h1>" in html
    assert docs.EXAMPLE_BASE_URL not in html
    if docs.EXAMPLE_BASE_URL in source:
        assert "http://kiwi.example" in html


def test_the_agents_guide_shows_the_request_hosts_base_url_in_its_examples(client, kiwi_host):
    html = client.get("/docs/agents.php", **kiwi_host).content.decode()
    assert "BASE=http://kiwi.example" in html
    assert "127.0.0.1:8000" not in html


def test_the_configured_site_url_wins_over_the_request_host(client, settings):
    settings.SITE_URL = "https://kiwi.example.org"
    html = client.get("/docs/agents.php").content.decode()
    assert "BASE=https://kiwi.example.org" in html


def test_links_between_docs_files_become_links_between_pages(client):
    html = client.get("/docs/agents.php").content
    hrefs = [a["href"] for a in elements(html, "a")]
    assert any(href.startswith("/docs/auth.php") for href in hrefs)
    assert not any(href.endswith(".md") or ".md#" in href for href in hrefs)
    assert b'<a href="/docs/auth.php">Authentication</a>' in html  # "auth.md" reads as the page's title


def test_the_billing_docs_page_says_billing_docs_are_coming_until_the_file_exists(client, monkeypatch, tmp_path):
    monkeypatch.setattr(docs, "DOCS_DIR", tmp_path)
    response = client.get("/docs/billing.php")
    assert response.status_code == 200
    assert b"documentation is coming" in response.content
    (tmp_path / "billing.md").write_text("# Billing\n\nTop up at http://127.0.0.1:8000/billing.php\n")
    html = client.get("/docs/billing.php").content.decode()
    assert '<h1 id="billing">Billing</h1>' in html and "http://testserver/billing.php" in html


def test_the_markdown_is_sanitized(client, monkeypatch, tmp_path):
    monkeypatch.setattr(docs, "DOCS_DIR", tmp_path)
    (tmp_path / "models.md").write_text(
        "# Models\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))\n\n<img src=x onerror=alert(2)>\n"
    )
    html = client.get("/docs/models.php").content.decode()
    article = html.split('<article class="prose">')[1].split("</article>")[0]
    assert "<script" not in article and "javascript:" not in article and "onerror" not in article


def test_unknown_docs_pages_are_404(client):
    assert client.get("/docs/nothing.php").status_code == 404
    assert client.get("/docs/README.php").status_code == 404


def test_llms_txt_describes_the_instance_and_lists_its_models(client, catalog, kiwi_host):
    response = client.get("/llms.txt", **kiwi_host)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = response.content.decode()
    assert text.startswith("# KiwiWhale\n")
    for needle in (
        "http://kiwi.example/openapi.json",
        "http://kiwi.example/.well-known/agent.json",
        "http://kiwi.example/docs/agents.php",
        "Authorization: Bearer",
        "POST /api/v1/generate.php",
        "GET /api/v1/jobs.php",
        "POST /api/v1/agent_register.php",
    ):
        assert needle in text, needle
    servable = AIModel.objects.servable(provider_keys_available())
    for model in servable:
        assert f"- {model.public_model} ({model.category}, " in text
    assert "z-image" not in text  # not served here: no provider account


def test_llms_txt_lists_the_card_endpoints_only_when_billing_is_on(client, catalog, settings):
    settings.STRIPE_ENABLED = False
    assert "/api/v1/agent_topup.php" not in client.get("/llms.txt").content.decode()
    settings.STRIPE_ENABLED = True
    assert "- POST /api/v1/agent_topup.php" in client.get("/llms.txt").content.decode()


def test_agent_json_gives_name_base_url_auth_links_and_capabilities(client, catalog, kiwi_host):
    response = client.get("/.well-known/agent.json", **kiwi_host)
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == "*"
    body = json.loads(response.content)
    assert body["name"] == "KiwiWhale" and body["url"] == "http://kiwi.example" and body["description"]
    assert body["api"]["base_url"] == "http://kiwi.example/api/v1"
    assert body["auth"]["type"] == "bearer" and body["auth"]["key_prefix"] == "kw_"
    assert body["auth"]["registration"]["url"] == "http://kiwi.example/api/v1/agent_register.php"
    assert body["links"]["openapi"] == "http://kiwi.example/openapi.json"
    assert body["links"]["llms_txt"] == "http://kiwi.example/llms.txt"
    assert body["links"]["docs"]["agents"] == "http://kiwi.example/docs/agents.php"
    capabilities = {c["name"]: c for c in body["capabilities"]}
    assert set(capabilities) == {
        "generate",
        "poll",
        "credits",
        "autonomous_billing",
        "affiliate",
        "showroom",
        "webhooks",
    }
    assert capabilities["webhooks"]["endpoints"] == [
        {"method": "GET", "url": "http://kiwi.example/api/v1/webhook_secret.php"},
        {"method": "POST", "url": "http://kiwi.example/api/v1/webhook_secret.php"},
        {"method": "GET", "url": "http://kiwi.example/api/v1/webhook_deliveries.php"},
    ]
    assert capabilities["generate"]["available"] is True
    assert {"method": "POST", "url": "http://kiwi.example/api/v1/generate.php"} in capabilities["generate"]["endpoints"]
    assert body["models"]["count"] == AIModel.objects.servable(provider_keys_available()).count()
    for url in (body["links"]["openapi"], body["links"]["llms_txt"], *body["links"]["docs"].values()):
        assert client.get(url.removeprefix("http://kiwi.example"), **kiwi_host).status_code == 200, url


def test_the_api_reference_page_uses_the_vendored_redoc_and_this_instances_schema(client):
    html = client.get("/api-reference.php").content
    redoc = elements(html, "redoc")
    assert redoc and redoc[0]["spec-url"] == "/openapi.json"
    scripts = [s["src"] for s in elements(html, "script") if "src" in s]
    assert any(src.startswith("/static/drf_spectacular_sidecar/redoc/") for src in scripts)
    assert not any(src.startswith(("http:", "https:", "//")) for src in scripts)


def test_the_api_explorer_uses_the_vendored_swagger_ui(client):
    html = client.get("/api-explorer.php").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn.jsdelivr" not in html and "unpkg.com" not in html


def test_doc_identifiers_wrap_after_underscores_and_code_blocks_take_focus(client):
    html = client.get("/docs/agents.php").content.decode()
    assert "idempotency_<wbr>key_<wbr>reused" in html
    assert '<pre tabindex="0">' in html


def test_the_client_readme_is_a_docs_page_listed_in_the_menu_and_llms_txt(client, catalog, kiwi_host):
    from django.conf import settings

    readme = settings.BASE_DIR / "clients" / "python" / "README.md"
    assert docs.doc_path("client") == readme  # the one file, not a copy under docs/
    response = client.get("/docs/client.php", **kiwi_host)
    assert response.status_code == 200
    first_heading = next(line for line in readme.read_text().splitlines() if line.startswith("# "))
    html = response.content.decode()
    assert f">{first_heading.removeprefix('# ')}</h1>" in html
    hrefs = [a["href"] for a in elements(response.content, "a")]
    # Its relative links to docs/ (../../docs/agents.md) become links between the pages.
    assert "/docs/agents.php" in hrefs and not any(".md" in href for href in hrefs)
    assert "/docs/client.php" in [a["href"] for a in elements(client.get("/docs/agents.php").content, "a")]
    assert "(http://kiwi.example/docs/client.php)" in client.get("/llms.txt", **kiwi_host).content.decode()
