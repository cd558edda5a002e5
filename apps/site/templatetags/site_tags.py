"""Template helpers shared by the site's pages (and free for the other apps' templates)."""

import json
import re

from django import template
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.safestring import mark_safe

from apps.billing import money

register = template.Library()


@register.filter
def credits(micro) -> str:
    """Micro-credits as credits, e.g. 50000 → '0.05'."""
    if micro is None or micro == "":
        return ""
    return money.format_credits(int(micro))


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters changed (None or '' drops one), for filter links."""
    params = context["request"].GET.copy()
    for name, value in changes.items():
        if value in (None, ""):
            params.pop(name, None)
        else:
            params[name] = value
    if "cursor" not in changes:
        params.pop("cursor", None)  # a filter change starts again at the first page
    encoded = urlencode(sorted((k, v) for k, v in params.items()))
    return f"?{encoded}" if encoded else "?"


@register.inclusion_tag("site/_icon.html")
def icon(name: str, label: str = "", size: int = 20):
    """An icon of the static sprite; decorative unless a label is given."""
    return {"name": name, "label": label, "size": size}


@register.filter
def pretty_json(value) -> str:
    """A JSON value indented for reading (templates escape it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@register.filter
def breakable(identifier) -> str:
    """An identifier, escaped, that may wrap after _ . / or = (never mid-word) on a narrow screen."""
    return mark_safe(re.sub(r"([_./=]+)(?=\w)", r"\1<wbr>", escape(str(identifier))))  # noqa: S308 - escaped first
