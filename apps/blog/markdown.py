"""Markdown to HTML that is safe to put in a page: python-markdown renders, nh3 (ammonia) sanitises.

Even staff-written posts go through the sanitiser: a stolen staff session must not become stored XSS.
"""

import markdown as markdown_lib
import nh3
from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em", "figcaption",
    "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "mark", "ol", "p", "pre", "s",
    "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "*": {"id", "title"},
    "a": {"href"},
    "abbr": {"title"},
    "img": {"src", "alt", "width", "height", "loading"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan", "scope"},
    "ol": {"start"},
    "code": {"class"},  # fenced code's language-xxx
    "div": {"class"},
    "span": {"class"},
}
URL_SCHEMES = {"http", "https", "mailto"}  # relative URLs stay allowed; javascript:, data:, vbscript: do not


def markdown_to_html(text: str) -> SafeString:
    html = markdown_lib.markdown(text or "", extensions=["extra", "sane_lists", "toc"], output_format="html")
    return mark_safe(  # noqa: S308 - sanitised just now by nh3
        nh3.clean(
            html,
            tags=ALLOWED_TAGS,
            clean_content_tags={"script", "style"},
            attributes=ALLOWED_ATTRIBUTES,
            url_schemes=URL_SCHEMES,
            link_rel="noopener noreferrer",
            strip_comments=True,
        )
    )


def post_html(post) -> SafeString:
    """A post's body as safe HTML, cached until the post changes."""
    key = f"blog:html:{post.pk}:{post.updated_at.timestamp()}"
    html = cache.get(key)
    if html is None:
        html = str(markdown_to_html(post.body))
        cache.set(key, html, timeout=24 * 3600)
    return mark_safe(html)  # noqa: S308 - produced by markdown_to_html
