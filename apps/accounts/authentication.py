from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from apps.accounts.services import api_key_admit, api_key_authenticate
from kiwiwhale.lib.ratelimit import client_ip


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer kw_…`. A request without the header falls through to session auth."""

    keyword = "Bearer"

    def authenticate(self, request, found: dict | None = None):
        """`found`: the key's cache entry, read by the caller with its own (api_key_cache_names)."""
        raw = self.raw_key(request)
        if raw is None:
            return None
        key = api_key_authenticate(raw, found=found)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        api_key_admit(key=key, client_ip=client_ip(request))  # KeyRefused: the exception handler answers it
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
