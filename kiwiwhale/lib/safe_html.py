"""The one HTML sanitising policy: Markdown (blog posts, docs pages) is rendered, then cleaned by nh3 (ammonia).

Everything written by people goes through it, staff included: a stolen staff session must not become stored XSS.
"""

import markdown as markdown_lib
import nh3

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


def html_sanitize(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def markdown_render(text: str) -> tuple[str, str]:
    """(body, table of contents), both sanitised HTML."""
    md = markdown_lib.Markdown(extensions=["extra", "sane_lists", "toc"], output_format="html")
    html = md.convert(text or "")
    return html_sanitize(html), html_sanitize(md.toc)
