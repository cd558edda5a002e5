"""The MCP server at /mcp: streamable HTTP (stateless), on the official `mcp` SDK's low-level server.

`mcp_application()` is the ASGI app that kiwiwhale/asgi.py mounts in front of Django. Each HTTP request carries the
caller's `Authorization: Bearer kw_…`, checked here with the API's own key lookup before the SDK sees the request
(401 otherwise); the tools then call /api/v1 with that same key (tools.py). Stateless: no session lives in a web
process, so any process of any machine answers any request, as for the rest of the API.
"""

import json

import mcp_types as types
from django.conf import settings
from mcp.server import Server
from mcp.server.transport_security import TransportSecuritySettings

from apps.accounts.services import api_key_authenticate
from apps.mcp_server.tools import db, tool_call, tools_list
from kiwiwhale.lib.internal_api import Caller

INSTRUCTIONS = (
    "KiwiWhale generates images, video, audio and text with AI models, paid in credits from the account's wallet. "
    "list_models / get_model show models, their input schema and cost; quote prices an input; generate runs a job "
    "(wait_seconds to get the outputs at once); get_credits shows the balance; topup and set_auto_topup charge "
    "the saved card (setup_payment saves one)."
)


def _caller(ctx) -> Caller:
    request = ctx.request
    client = request.client.host if request.client else "127.0.0.1"
    return Caller.from_headers(scheme=request.url.scheme, headers=request.headers, client_ip=client)


async def _list_tools(ctx, params) -> types.ListToolsResult:
    return types.ListToolsResult(tools=await tools_list())


async def _call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return await tool_call(_caller(ctx), params.name, params.arguments or {})


def mcp_server() -> Server:
    return Server(
        settings.SITE_NAME,
        version="1",
        instructions=INSTRUCTIONS,
        on_list_tools=_list_tools,
        on_call_tool=_call_tool,
    )


@db
def _key_valid(raw: str) -> bool:
    return api_key_authenticate(raw) is not None


class BearerKeyRequired:
    """401 unless the request carries a valid, unrevoked `kw_` key (the same lookup as /api/v1)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip() or not await _key_valid(raw.strip()):
            message = "Send your KiwiWhale API key: 'Authorization: Bearer kw_…'." if not header else "Invalid key."
            body = json.dumps({"success": False, "error": "unauthorized", "message": message}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="mcp"'),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def mcp_application():
    starlette_app = mcp_server().streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        # The key travels in a header a rebinding page cannot know, so the Host check adds nothing here; it would
        # refuse every host but localhost by default.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return BearerKeyRequired(starlette_app)
