"""Every published page, and a generation's page, at 390 px and 1366 px, light and dark: no horizontal overflow,
and a screenshot of each in artifacts/screenshots/."""

import pytest

from apps.accounts.services import api_key_create
from apps.catalog.models import AIModel
from apps.generations.services import job_create, job_run
from tests.browser.conftest import DESKTOP, PHONE, axe_serious, log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "local/procedural-image"
PUBLISHED = [
    "/",
    "/showroom.php",
    "/generations.php",
    "/api_key.php",
    "/billing.php",
    "/blog.php",
    "/affiliate.php",
    "/contact.php",
    "/terms.php",
    "/docs/agents.php",
    "/docs/auth.php",
    "/docs/billing.php",
    "/docs/models.php",
    f"/model.php?model={MODEL}",
    f"/model-playground.php?model={MODEL}",
    f"/model-api.php?model={MODEL}",
    f"/model-docs.php?model={MODEL}",
    f"/model-code.php?model={MODEL}",
]


def _slug(path: str) -> str:
    return path.strip("/").replace("/", "-").replace(".php", "").replace("?model=", "-").replace("/", "-") or "home"


# The innermost elements that stick out on the right, to say what to fix.
OFFENDERS = """() => {
  const limit = document.documentElement.clientWidth;
  return [...document.querySelectorAll("body *")]
    .filter(el => el.getBoundingClientRect().right > limit + 1 && ![...el.children].some(
      child => child.getBoundingClientRect().right > limit + 1))
    .slice(0, 4).map(el => el.tagName.toLowerCase() + (el.className ? "." + String(el.className).split(" ")[0] : "")
      + " " + (el.textContent || "").trim().slice(0, 40));
}"""


@pytest.fixture
def generation(catalog, alice):
    model = AIModel.objects.get(public_model=MODEL)
    job = job_create(user=alice, model=model, input={"prompt": "a long identifier " + "x" * 80, "width": 64})
    job_run(job_id=job.pk)
    api_key_create(user=alice, name="a key with a rather long name for a narrow screen")
    api_key_create(
        user=alice,
        name="limited",
        scopes=["generate"],
        spend_limit_day_micro=1_500_000,
        allowed_models=["gpt-image-2/text-to-image", "kiwiwhale/seedance-2.0-fast", "local/*"],
        allowed_ips=["2001:db8:85a3::/48", "203.0.113.0/24"],
        rpm_limit=60,
    )
    return job


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_page_is_wider_than_a_phone_nor_fails_axe(new_context, live_server, generation, axe_script, scheme):
    pages = [*PUBLISHED, f"/generation.php?id={generation.pk}"]
    too_wide, inaccessible = {}, {}
    for viewport in (PHONE, DESKTOP):
        page = new_context(viewport=viewport, color_scheme=scheme, bypass_csp=True).new_page()  # axe is injected
        log_in(page, "alice@example.com")
        for path in pages:
            response = page.goto(path)
            assert response.status == 200, path
            page.wait_for_load_state("load")
            width = page.evaluate("document.documentElement.scrollWidth")
            if width > viewport["width"]:
                too_wide[f"{path} at {viewport['width']}"] = (width, page.evaluate(OFFENDERS))
            name = "generation" if path.startswith("/generation.php") else _slug(path)
            screenshot(page, f"page-{name}-{viewport['width']}-{scheme}")
            if viewport is DESKTOP:
                problems = axe_serious(page, axe_script)
                if problems:
                    inaccessible[path] = problems
        if viewport is DESKTOP:
            # Logged out too: the pages a visitor sees first.
            visitor = new_context(viewport=viewport, color_scheme=scheme, bypass_csp=True).new_page()
            for path in ("/", "/showroom.php", "/accounts/signup/", "/accounts/login/", "/contact.php"):
                visitor.goto(path)
                problems = axe_serious(visitor, axe_script)
                if problems:
                    inaccessible[f"{path} (visitor)"] = problems
    assert not too_wide, f"Wider than the screen: {too_wide}"
    assert not inaccessible, f"axe-core, serious or critical: {inaccessible}"
