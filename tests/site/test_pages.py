import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import Resolver404, resolve

from apps.accounts.models import User
from apps.billing.services import wallet_get
from tests.site.helpers import elements

pytestmark = pytest.mark.django_db

# The published site paths (api-contract.md, "Site pages") this part of the site serves, and ours.
PUBLIC_PATHS = [
    "/",
    "/model.php?model=local/procedural-image",
    "/model-playground.php?model=local/procedural-image",
    "/model-api.php?model=local/procedural-image",
    "/model-docs.php?model=local/procedural-image",
    "/model-code.php?model=local/procedural-image",
    "/docs/agents.php",
    "/docs/auth.php",
    "/docs/billing.php",
    "/docs/models.php",
    "/api-reference.php",
    "/api-explorer.php",
    "/llms.txt",
    "/.well-known/agent.json",
    "/openapi.json",
]
LOGIN_ONLY_PATHS = ["/generations.php", "/api_key.php"]


def test_the_home_page_lists_the_servable_models(client, catalog):
    response = client.get("/")
    assert response.status_code == 200
    assert b"local/procedural-image" in response.content and b"z-image" not in response.content


def test_the_health_check_answers(client):
    assert client.get("/healthz").json() == {"ok": True}


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_it_answers_200_on_every_public_path_for_a_visitor(client, catalog, path):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", PUBLIC_PATHS + LOGIN_ONLY_PATHS)
def test_it_answers_200_on_every_path_for_a_signed_in_person(client, catalog, alice, path):
    client.force_login(alice)
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("path", LOGIN_ONLY_PATHS)
def test_it_sends_visitors_to_the_login_page_where_an_account_is_needed(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


@pytest.mark.parametrize(
    "path", ["/showroom.php", "/billing.php", "/blog.php", "/contact.php", "/terms.php", "/affiliate.php"]
)
def test_every_navigation_link_points_at_a_routed_page(path):
    # The other site pages are built alongside; the navigation must never lead to a path nobody serves.
    try:
        resolve(path)
    except Resolver404:
        pytest.fail(f"{path} is in the navigation but not routed")


def test_it_shows_the_navigation_with_the_current_page_marked(client, catalog):
    html = client.get("/").content
    current = [a["href"] for a in elements(html, "a") if a.get("aria-current") == "page"]
    assert current == ["/"]
    assert [a["href"] for a in elements(client.get("/docs/auth.php").content, "a") if a.get("aria-current")] == [
        "/docs/agents.php",  # the main navigation's Docs
        "/docs/auth.php",  # the docs menu
    ]
    for text in (b"Models", b"Showroom", b"Generations", b"API Key", b"Billing", b"Blog", b"Affiliate", b"Docs"):
        assert text in html


def test_it_offers_a_skip_link_a_theme_toggle_and_a_labelled_menu_button(client, catalog):
    html = client.get("/").content
    assert any(a.get("class") == "skip-link" and a.get("href") == "#main" for a in elements(html, "a"))
    assert any(m.get("id") == "main" for m in elements(html, "main"))
    buttons = elements(html, "button")
    assert any("data-theme-toggle" in b and b.get("aria-label") for b in buttons)
    menu = next(b for b in buttons if "data-nav-toggle" in b)
    assert menu["aria-controls"] == "site-nav" and menu["aria-expanded"] == "false" and menu["aria-label"]
    assert elements(html, "html")[0]["lang"] == "en"


def test_it_shows_the_balance_only_to_a_signed_in_person(client, catalog, alice):
    assert b"data-balance" not in client.get("/").content
    assert b"Log in" in client.get("/").content
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert "data-balance-value>10<" in html
    assert "Log out" in html and "Sign up" not in html


def test_the_balance_costs_one_query_and_none_when_not_shown(client, catalog, alice, django_assert_num_queries):
    from django.template import engines
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = alice
    template = engines["django"].from_string("{{ balance_micro }} {{ balance_micro }}")
    with django_assert_num_queries(1):
        assert template.render({}, request).split() == ["10000000", "10000000"]
    with django_assert_num_queries(0):
        engines["django"].from_string("{{ site_name }}").render({}, request)


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
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert b"Not found" in response.content


def test_every_page_loads_its_styles_and_scripts_from_this_instance(client, catalog):
    html = client.get("/model-playground.php?model=local/procedural-image").content
    sources = [s["src"] for s in elements(html, "script") if "src" in s]
    styles = [link["href"] for link in elements(html, "link") if link.get("rel") == "stylesheet"]
    assert sources and styles
    assert all(url.startswith("/static/") for url in sources + styles), sources + styles
    for url in sources + styles:
        assert finders.find(url.removeprefix("/static/")), f"{url} is not a static file of the project"


@pytest.mark.parametrize(
    ("path", "target"),
    [("/favicon.ico", "/static/icons/favicon.svg"), ("/docs/", "/docs/agents.php"), ("/model.php", "/")],
)
def test_bare_paths_people_type_lead_somewhere(client, catalog, path, target):
    response = client.get(path)
    assert response.status_code in (301, 302) and response["Location"] == target
    if target.startswith("/static/"):
        from django.contrib.staticfiles import finders

        assert finders.find(target.removeprefix("/static/"))
    else:
        assert client.get(target).status_code == 200


def test_the_search_empty_state_names_the_query_in_a_part_the_script_updates(client, catalog):
    html = client.get("/", {"q": "zebra unicorn"}).content.decode()
    assert "<span data-catalog-query> “zebra unicorn”</span>" in html
