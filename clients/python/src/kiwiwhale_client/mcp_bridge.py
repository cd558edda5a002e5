"""`kiwiwhale mcp`: a stdio MCP server whose tools are the remote instance's /mcp tools, for MCP hosts that only
speak stdio. It lists the remote's tools as they are (names, descriptions, input schemas) and passes each call
through with the account's key, returning the remote's result unchanged (structuredContent, images, errors).

Built on the official `mcp` SDK: its stdio server transport on one side, its streamable-HTTP client on the other.
"""

from __future__ import annotations

import contextlib
import sys

import anyio
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from mcp.server.stdio import stdio_server

from kiwiwhale_client._core import __version__

REMOTE_TIMEOUT = 120.0  # a `generate` with wait_seconds (≤ 60) and its downloads fit in it


async def bridge_run(*, base_url: str, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}", "User-Agent": f"kiwiwhale-client/{__version__} (mcp bridge)"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=REMOTE_TIMEOUT) as http,
        streamable_http_client(f"{base_url.rstrip('/')}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as remote,
    ):
        remote_info = await remote.initialize()

        async def list_tools(ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
            return await remote.list_tools(params=params)

        async def call_tool(ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
            return await remote.call_tool(params.name, params.arguments or {})

        server = Server(
            f"{remote_info.server_info.name} (stdio bridge)",
            version=__version__,
            instructions=remote_info.instructions,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )
        async with stdio_server() as (stdin, stdout):
            await server.run(stdin, stdout, server.create_initialization_options())


def bridge_main(*, base_url: str, api_key: str) -> int:
    try:
        anyio.run(lambda: bridge_run(base_url=base_url, api_key=api_key))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the host shows stderr: say why the bridge stopped
        while isinstance(exc, ExceptionGroup) and exc.exceptions:  # anyio's task groups wrap the cause
            exc = exc.exceptions[0]
        with contextlib.suppress(Exception):
            print(f"kiwiwhale mcp: {base_url.rstrip('/')}/mcp: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
