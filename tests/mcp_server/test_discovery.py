"""Agents find /v1 and /mcp where they look first, and both have their docs page."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_lists_the_openai_api_and_the_mcp_server(client, catalog):
    text = client.get("/llms.txt").content.decode()
    assert "http://testserver/v1 " in text and "http://testserver/mcp" in text
    descriptor = client.get("/.well-known/agent.json").json()
    assert descriptor["mcp"] == {
        "url": "http://testserver/mcp",
        "transport": "streamable-http",
        "auth": "bearer",
        "docs": "http://testserver/docs/mcp.php",
    }
    assert descriptor["openai_compatible"]["base_url"] == "http://testserver/v1"
    for slug, heading in (("openai", "OpenAI-compatible API"), ("mcp", "MCP server")):
        page = client.get(f"/docs/{slug}.php")
        assert page.status_code == 200 and heading in page.content.decode()
