"""Key limits hold on the facades too: /v1 (the openai SDK) and /mcp (the mcp SDK) call /api/v1 with the caller's
key, so a refusal comes out in each facade's own error shape, and nothing is charged."""

import asyncio

import httpx2
import openai
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from openai import OpenAI

from apps.accounts.services import api_key_create
from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_openai_facade_answers_a_key_refusal_in_openais_shape(web_server, catalog):
    user = make_user("openai-limited", credits="5")
    _, key = api_key_create(user=user, allowed_models=["z-image"])
    client = OpenAI(base_url=f"{web_server}/v1", api_key=key, max_retries=0, timeout=60)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.images.generate(model="local/procedural-image", prompt="a kiwi")
    assert caught.value.status_code == 403
    assert (caught.value.body["code"], caught.value.body["type"]) == ("forbidden_model", "permission_error")
    _, broke = api_key_create(user=user, spend_limit_total_micro=0)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        OpenAI(base_url=f"{web_server}/v1", api_key=broke, max_retries=0).images.generate(
            model="local/procedural-image", prompt="a kiwi"
        )
    assert caught.value.body["code"] == "key_limit_reached" and caught.value.body["limit"] == "total"
    assert not Job.objects.filter(user=user).exists() and wallet_get(user=user).balance_micro == 5_000_000


def test_the_mcp_facade_answers_a_key_refusal_as_an_error_tool_result(web_server, catalog):
    user = make_user("mcp-limited", credits="5", account_type="agent")
    _, key = api_key_create(user=user, scopes=["generate"], spend_limit_day_micro=0)

    async def run():
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
            streamable_http_client(f"{web_server}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            generated = await session.call_tool(
                "generate", {"model": "local/procedural-image", "input": {"prompt": "a kiwi", "width": 64}}
            )
            topup = await session.call_tool("topup", {"credits": 10})
            return generated, topup

    generated, topup = asyncio.run(run())
    assert generated.is_error and generated.structured_content["error"] == "key_limit_reached"
    assert generated.structured_content["limit"] == "day"
    assert topup.is_error and topup.structured_content["error"] == "insufficient_scope"
    assert topup.structured_content["scope"] == "billing"
    assert not Job.objects.filter(user=user).exists() and wallet_get(user=user).balance_micro == 5_000_000
