from functools import cache

from django.conf import settings

from apps.billing.models import Wallet

# The main navigation, as kiwiwhale.com's: (label, path). "Docs" is active on every /docs/ page.
NAV = [
    ("Models", "/"),
    ("Showroom", "/showroom.php"),
    ("Generations", "/generations.php"),
    ("API Key", "/api_key.php"),
    ("Billing", "/billing.php"),
    ("Blog", "/blog.php"),
    ("Affiliate", "/affiliate.php"),
    ("Docs", "/docs/agents.php"),
]


def _is_current(path: str, href: str) -> bool:
    if href == "/":
        return path == "/" or path.startswith("/model")
    if href.startswith("/docs/"):
        return path.startswith("/docs/") or path == "/api-reference.php"
    return path == href or path.startswith(href.removesuffix(".php") + "/")


def _balance_micro(user) -> int | None:
    # One query, and only when a template shows the balance.
    if not user.is_authenticated:
        return None
    return Wallet.objects.filter(user=user).values_list("balance_micro", flat=True).first() or 0


def site(request):
    user = getattr(request, "user", None)

    @cache
    def balance_micro():
        # Templates call a callable when they render it: pages that don't show the balance cost no query.
        return _balance_micro(user) if user is not None else None

    return {
        "site_name": settings.SITE_NAME,
        "nav_items": [{"label": text, "href": href, "current": _is_current(request.path, href)} for text, href in NAV],
        "balance_micro": balance_micro,
    }
