"""The ASGI application that scripts/web serves: /mcp goes to the MCP server, a request to /api/ that carries an
`Authorization` header to Django's API handler, everything else to Django with the site's middlewares."""

import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")
django_application = get_asgi_application()

from apps.mcp_server.server import mcp_application  # noqa: E402 - needs Django set up first


class ApiHandler(ASGIHandler):
    """Django with settings.API_MIDDLEWARE: an API key's request needs no session, CSRF token, messages, allauth
    state or referral cookie (DRF authenticates it and answers every refusal), and its middlewares all run inline,
    so it goes from the event loop to its view with no thread hop in between. Same URLs, views and error pages."""

    def load_middleware(self, is_async=False):
        site = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE  # read only here, once, before the first request
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = site


api_application = ApiHandler()
mcp_app = mcp_application()
MCP_PATH = "/mcp"


def _is_api_call(scope) -> bool:
    """A request to /api/ with an Authorization header: DRF authenticates it by its key or refuses it (401), and
    never falls back to the session (apps/accounts/authentication.py), which this handler does not load."""
    return scope["path"].startswith("/api/") and any(name == b"authorization" for name, _ in scope["headers"])


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await mcp_app(scope, receive, send)  # runs the MCP session manager for the life of the process
        return
    path = scope.get("path", "")
    if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
        await mcp_app(scope, receive, send)
        return
    if scope["type"] == "http" and _is_api_call(scope):
        await api_application(scope, receive, send)
        return
    await django_application(scope, receive, send)
