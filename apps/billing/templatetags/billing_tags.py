from django import template

from apps.billing import money as money_module

register = template.Library()


@register.filter
def money(cents, currency="usd") -> str:
    """Cents as money, e.g. 1061|money:"usd" → '$10.61'."""
    if cents is None or cents == "":
        return ""
    return money_module.format_money(int(cents), str(currency or "usd"))
