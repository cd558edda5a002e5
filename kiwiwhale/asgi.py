"""The ASGI application that scripts/web serves: /mcp goes to the MCP server, everything else to Django."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kiwiwhale.settings")
django_application = get_asgi_application()

from apps.mcp_server.server import mcp_application  # noqa: E402 - needs Django set up first

mcp_app = mcp_application()
MCP_PATH = "/mcp"


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await mcp_app(scope, receive, send)  # runs the MCP session manager for the life of the process
        return
    path = scope.get("path", "")
    if path == MCP_PATH or path.startswith(MCP_PATH + "/"):
        await mcp_app(scope, receive, send)
        return
    await django_application(scope, receive, send)
