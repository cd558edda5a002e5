"""Blog posts as safe HTML (the sanitising policy is kiwiwhale/lib/safe_html.py), cached per revision."""

from django.core.cache import cache
from django.utils.safestring import SafeString, mark_safe

from kiwiwhale.lib.safe_html import markdown_render


def markdown_to_html(text: str) -> SafeString:
    return mark_safe(markdown_render(text)[0])  # noqa: S308 - sanitised by markdown_render


def post_html(post) -> SafeString:
    """A post's body as safe HTML, cached until the post changes."""
    key = f"blog:html:{post.pk}:{post.updated_at.timestamp()}"
    html = cache.get(key)
    if html is None:
        html = str(markdown_to_html(post.body))
        cache.set(key, html, timeout=24 * 3600)
    return mark_safe(html)  # noqa: S308 - produced by markdown_to_html
