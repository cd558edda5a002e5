"""Pages live with the app that owns them; the published paths are kept in one file (kiwiwhale/legacy_urls.py)."""

import re
from types import ModuleType

import pytest
from django.urls import resolve, reverse

from kiwiwhale import legacy_urls, urls

# The published site pages (api-contract.md, "Site pages") and the module that must serve each.
OWNERS = {
    "/showroom.php": "apps.showroom.views",
    "/generations.php": "apps.generations.views",
    "/generation.php": "apps.generations.views",
    "/api_key.php": "apps.accounts.views",
    "/profile.php": "apps.accounts.views",
    "/billing.php": "apps.billing.views",
    "/blog.php": "apps.blog.views",
    "/affiliate.php": "apps.affiliates.views",
    "/contact.php": "apps.contact.views",
    "/terms.php": "apps.contact.views",
    "/docs/agents.php": "apps.site.views",
    "/model.php": "apps.catalog.views",
    "/model-playground.php": "apps.catalog.views",
    "/model-api.php": "apps.catalog.views",
    "/model-docs.php": "apps.catalog.views",
    "/model-code.php": "apps.catalog.views",
}


@pytest.mark.parametrize("path,module", OWNERS.items())
def test_each_published_page_is_served_by_the_app_that_owns_it(path, module):
    assert resolve(path).func.__module__ == module


# The contract's "Site pages [published paths]", as written there.
CONTRACT_PAGES = """`/` (model catalog),
`/showroom.php`, `/generations.php`, `/api_key.php`, `/billing.php`, `/blog.php`,
`/affiliate.php`, `/contact.php`, `/terms.php`, `/docs/agents.php`, `/docs/auth.php`, `/docs/billing.php`,
`/docs/models.php`, and per model `/model.php?model=X`, `/model-playground.php?model=X`, `/model-api.php?model=X`,
`/model-docs.php?model=X`, `/model-code.php?model=X`."""


def test_every_published_page_is_in_the_legacy_file():
    published = {p.split("?")[0] for p in re.findall(r"`(/[^`\s]+\.php[^`\s]*)`", CONTRACT_PAGES)}
    assert len(published) == 17
    for path in published:
        match = resolve(path)
        assert any(match.func is view for _, view, _ in legacy_urls.PAGES), path


def test_only_the_legacy_file_the_home_page_and_the_probes_are_mounted_at_the_root():
    included = [p for p in urls.urlpatterns if isinstance(getattr(p, "urlconf_name", None), ModuleType)]
    at_root = [p.urlconf_name.__name__ for p in included if str(p.pattern) == ""]
    assert at_root == ["kiwiwhale.legacy_urls", "apps.site.urls", "apps.ops.urls"]
    prefixed = {str(p.pattern): p.urlconf_name.__name__ for p in included}
    for prefix, app in [("generations/", "generations"), ("account/", "accounts"), ("showroom/", "showroom")]:
        assert prefixed[prefix] == f"apps.{app}.urls"


def test_an_app_route_sits_under_its_prefix():
    assert reverse("generations:cancel") == "/generations/cancel/"
    assert reverse("accounts:api_key_revoke") == "/account/keys/revoke/"
    assert reverse("billing:checkout") == "/billing/checkout/"
    assert reverse("generations") == "/generations.php"


@pytest.mark.parametrize("name,view", legacy_urls.API_ENDPOINTS)
def test_each_api_endpoint_answers_at_its_php_path_and_at_the_alias_made_from_it(name, view):
    php, alias = resolve(f"/api/v1/{name}.php"), resolve(f"/api/v1/{name}")
    assert php.func is view and alias.func is view
    assert php.url_name == name and reverse(f"api:{name}") == f"/api/v1/{name}.php"
