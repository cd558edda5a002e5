"""The documentation pages: the Markdown of docs/ (one source for the repository and the site), sanitized.

Examples in docs/ use `http://127.0.0.1:8000`, the address of `make run`; each page shows the instance's own base
URL instead. Links between the files (`auth.md#keys`) become links between the pages.
"""

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from kiwiwhale.lib.safe_html import markdown_render

DOCS_DIR = Path(settings.BASE_DIR) / "docs"
EXAMPLE_BASE_URL = "http://127.0.0.1:8000"

# slug → (title in the menu, one line for llms.txt). The published pages first.
PAGES = {
    "agents": ("Agent quickstart", "Register, check credits, generate, poll and download, with every error."),
    "auth": ("Authentication", "API keys, browser sessions, the registration rate limit."),
    "billing": ("Billing", "Credits, top-ups by card, saved cards and auto top-up."),
    "models": ("Models and pricing", "The catalog, input schemas, price rules and which models are served."),
    "operations": ("Running an instance", "Configuration, production setup, workers, sweepers, admin commands."),
    "providers": ("Providers", "Upstream providers and local engines, and how to add one."),
    "affiliates": ("Affiliate program", "Referral links, attribution, commission, conversion and payouts."),
    "site": ("The website", "Accounts, two-factor, showroom moderation, blog and contact, for operators."),
    "openai": ("OpenAI-compatible API", "/v1 for the OpenAI SDKs: chat with streaming, images, speech, transcription."),
    "mcp": ("MCP server", "/mcp for MCP hosts: tools to generate, follow jobs, read the wallet and top it up."),
    "client": ("Python client and CLI", "`pip install ./clients/python`: the API from Python and the shell, and MCP."),
}
PUBLISHED = ("agents", "auth", "billing", "models")
# Pages whose Markdown lives beside the code it documents, not in docs/ (one file for the repository and the site).
SOURCES = {"client": Path("clients/python/README.md")}

# A link to another docs file, as written in docs/ (`auth.md#keys`) or from elsewhere (`../../docs/auth.md`).
_MD_LINK = re.compile(r"\[([^\]]*)\]\((?:(?:\.\./)*docs/)?([a-z][a-z0-9_-]*)\.md(#[^)\s]*)?\)")
# Inline code (not a <pre> block): its text only, as the sanitizer leaves it.
_INLINE_CODE = re.compile(r"(?<!<pre>)<code>([^<]*)</code>")
_IDENT_BREAK = re.compile(r"([_./=]+)(?=\w)")


@dataclass(frozen=True)
class DocPage:
    slug: str
    title: str
    html: str  # sanitized
    toc_html: str  # sanitized
    exists: bool


def doc_path(slug: str) -> Path:
    if slug in SOURCES:
        return Path(settings.BASE_DIR) / SOURCES[slug]
    return DOCS_DIR / f"{slug}.md"


def doc_render(slug: str, *, base_url: str) -> DocPage:
    """The page of docs/<slug>.md with `base_url` in its examples; `exists` is False when the file is not there."""
    path = doc_path(slug)
    title = PAGES[slug][0]
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        return DocPage(slug=slug, title=title, html="", toc_html="", exists=False)
    html, toc_html = _render_cached(str(path), mtime, base_url)
    return DocPage(slug=slug, title=title, html=html, toc_html=toc_html, exists=True)


@lru_cache(maxsize=64)
def _render_cached(path: str, mtime: int, base_url: str) -> tuple[str, str]:
    source = Path(path).read_text(encoding="utf-8").replace(EXAMPLE_BASE_URL, base_url)
    source = _MD_LINK.sub(_link_to_page, source)
    html, toc_html = markdown_render(source)
    html = _INLINE_CODE.sub(_breakable_code, html)
    # A code block scrolls sideways on a narrow screen: focusable, so the keyboard can scroll it too.
    html = html.replace("<pre>", '<pre tabindex="0">')
    return html, toc_html


def _breakable_code(match: re.Match) -> str:
    """A long identifier (`idempotency_key_reused`, `/api/v1/jobs.php`) may wrap after `_`, `.`, `/` or `=`
    on a narrow screen, instead of mid-word or not at all."""
    return "<code>" + _IDENT_BREAK.sub(r"\1<wbr>", match.group(1)) + "</code>"


def _link_to_page(match: re.Match) -> str:
    text, slug, anchor = match.group(1), match.group(2), match.group(3) or ""
    if slug not in PAGES or not doc_path(slug).exists():
        return text  # no page for that file on the site: keep the words, drop the dead link
    if text in (f"{slug}.md", f"docs/{slug}.md"):  # "see auth.md" reads as the page's title
        text = PAGES[slug][0]
    return f"[{text}](/docs/{slug}.php{anchor})"


def doc_menu() -> list[tuple[str, str]]:
    """(slug, title) of the pages to list: the published ones always, the others when their file exists."""
    return [(slug, title) for slug, (title, _) in PAGES.items() if slug in PUBLISHED or doc_path(slug).exists()]
