"""`kiwiwhale mcp`, the stdio bridge, driven by the official `mcp` SDK's stdio client, to the live server's /mcp."""

import os

import httpx
import pytest
from mcp import StdioServerParameters
from mcp.client.session import ClientSession
from mcp.client.stdio import stdio_client

from tests.client.conftest import KIWIWHALE, run_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_it_lists_the_remote_tools_and_passes_calls_through(web_server, agent, tmp_path):
    env = {**os.environ, "KIWIWHALE_BASE_URL": web_server, "KIWIWHALE_API_KEY": agent.raw_key}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    bridge = StdioServerParameters(command=str(KIWIWHALE), args=["mcp"], env=env)

    async def steps():
        async with stdio_client(bridge) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            credits = await session.call_tool("get_credits", {})
            missing = await session.call_tool("get_job", {"job_id": "job_nope"})
            return tools, credits, missing

    tools, credits, missing = run_async(steps)
    names = {tool.name for tool in tools}
    assert {"generate", "get_credits", "topup", "list_models", "get_job"} <= names
    generate = next(tool for tool in tools if tool.name == "generate")
    assert "local/procedural-image" in generate.input_schema["properties"]["model"]["enum"]  # the remote's schema
    direct = httpx.get(f"{web_server}/api/v1/credits.php", headers={"Authorization": f"Bearer {agent.raw_key}"})
    assert not credits.is_error and credits.structured_content == direct.json()
    assert missing.is_error and missing.structured_content["error"] == "not_found"
