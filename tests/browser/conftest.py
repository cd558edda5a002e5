"""Playwright driving Debian's Chromium against a live test server (and, where a test asks, a live Celery worker).

The browser is /usr/bin/chromium from apt (`make test` installs it when missing); never `playwright install`,
which downloads a browser. Every request the page makes outside the live server is aborted: no test reaches the
internet. Screenshots land in artifacts/screenshots/ (git-ignored), kept as CI artifacts.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# Playwright's sync API runs an asyncio event loop in the test's thread, so Django sees a running loop and refuses
# ORM calls from that thread ("SynchronousOnlyOperation"). The calls are ordinary blocking code that the loop never
# interleaves with, so the check is a false alarm here; allow it for the browser tests only.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def new_context(browser, live_server):
    """Opens browser contexts on the live server (one per visitor); each stays offline and is closed at the end."""
    contexts = []
    local_host = urlsplit(live_server.url).hostname

    def _stay_local(route):
        url = route.request.url
        if url.startswith(("data:", "blob:")) or urlsplit(url).hostname in (local_host, "localhost", "127.0.0.1"):
            route.continue_()
        else:
            route.abort()

    def open_context(**options):
        context = browser.new_context(base_url=live_server.url, viewport=options.pop("viewport", DESKTOP), **options)
        context.set_default_timeout(15_000)
        context.route("**/*", _stay_local)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context):
    return new_context().new_page()


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header then sits at the top of a full-page capture
    page.screenshot(path=str(path), full_page=full_page)
    return path


def log_in(page, email: str, password: str = "pw-for-tests-1") -> None:  # noqa: S107 - the test personas
    """Logs in through the real form (the personas of tests/conftest.py share one password)."""
    from playwright.sync_api import expect

    page.goto("/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.locator("input[name=password]").press("Enter")
    expect(page.locator("header form[action='/accounts/logout/'] button")).to_be_visible()


AXE_VERSION = "4.14.1"
AXE_DIR = Path(__file__).resolve().parents[2] / "var" / "axe"  # git-ignored; npm installs it on first use


@pytest.fixture(scope="session")
def axe_script() -> Path:
    """axe-core from the npm registry, installed once into var/axe/ (the ordinary npm client, pinned)."""
    import subprocess

    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(AXE_DIR), f"axe-core@{AXE_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return script


def axe_serious(page, axe_script: Path) -> list[str]:
    """The serious and critical violations axe-core finds on the page, one line each."""
    page.add_script_tag(path=str(axe_script))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} — {', '.join(str(n['target']) for n in v['nodes'][:3])}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
