"""Content-Security-Policy on every response (Django 5.2 has none built in).

Scripts run only from our origin, Stripe.js's origin and inline blocks that carry this response's nonce
(`<script nonce="{{ request.csp_nonce }}">`): an injected `<script>` or `onclick=` does not run. Styles allow inline
`style=""` attributes (the templates use them for spacing; a style cannot run code). Media may come from the
storage's own origin when MEDIA_URL is absolute (S3).
"""

import secrets
from urllib.parse import urlsplit

from django.conf import settings

from kiwiwhale.lib.middleware import InlineMiddlewareMixin


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def csp_header(nonce: str) -> str:
    stripe = _origin(settings.STRIPE_JS_URL)
    media = _origin(settings.MEDIA_URL)
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", f"'nonce-{nonce}'", stripe],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", media],
        "media-src": ["'self'", "data:", "blob:", media],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'", "https://api.stripe.com" if stripe else "", _origin(settings.STRIPE_API_BASE)],
        "frame-src": [stripe, "https://hooks.stripe.com" if stripe else ""],
        "worker-src": ["'self'", "blob:"],  # the API reference (Redoc) parses the document in a worker
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(" ".join([name, *dict.fromkeys(v for v in values if v)]) for name, values in directives.items())


class ContentSecurityPolicyMiddleware(InlineMiddlewareMixin):
    def process_request(self, request):
        request.csp_nonce = secrets.token_urlsafe(16)

    def process_response(self, request, response):
        response.setdefault("Content-Security-Policy", csp_header(request.csp_nonce))
        return response
