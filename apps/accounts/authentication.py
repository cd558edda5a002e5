from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from apps.accounts.services import api_key_admit, api_key_authenticate
from kiwiwhale.lib.ratelimit import client_ip


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer kw_…`. A request without the header falls through to session auth."""

    keyword = "Bearer"

    def authenticate(self, request, found: dict | None = None):
        """`found`: the key's cache entry, read by the caller with its own (api_key_cache_names). Once per HTTP
        request: a view that hands the request on (the lean poll to the DRF view) neither reads the key again nor
        counts the request twice against the key's minute."""
        http_request = getattr(request, "_request", request)  # DRF's Request wraps Django's
        admitted = getattr(http_request, "_api_key_admitted", None)
        if admitted is not None:
            return admitted
        raw = self.raw_key(request)
        if raw is None:
            return None
        key = api_key_authenticate(raw, found=found)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        api_key_admit(key=key, client_ip=client_ip(request))  # KeyRefused: the exception handler answers it
        http_request._api_key_admitted = (key.user, key)
        return key.user, key

    @staticmethod
    def raw_key(request) -> str | None:
        """The key the request carries; None without an Authorization header."""
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip() or " " in raw.strip():
            raise exceptions.AuthenticationFailed("Malformed Authorization header; use 'Bearer kw_…'.")
        return raw.strip()

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "kw_… API key"}
