"""The official `mcp` SDK's streamable-HTTP client, unchanged, against the real server and a real worker.

Tool results carry the /api/v1 endpoint's own JSON as structuredContent: each test compares them with the endpoint
called directly, and checks that the wallet moved by exactly what the job (or the top-up) says.
"""

import asyncio
import base64
import subprocess
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from apps.accounts.services import api_key_create
from apps.billing import money
from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.billing.conftest import STRIPE_ENV, card_create, localstripe, stripe_client  # noqa: F401 - a fixture
from tests.conftest import ROOT, _free_port, make_user, service_env, wait_for_http

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


async def _session_run(url: str, key: str | None, steps):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=90) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        return await steps(session)


def mcp(url: str, key: str | None, steps):
    return asyncio.run(_session_run(url, key, steps))


@pytest.fixture
def agent(web_server, celery_worker_process, catalog):
    user = make_user("mcp-agent", credits="5", account_type="agent")
    _, key = api_key_create(user=user, name="mcp")
    return user, key


def _api(url: str, key: str, path: str, **params) -> dict:
    return httpx.get(f"{url}/api/v1/{path}", params=params, headers={"Authorization": f"Bearer {key}"}).json()


def test_it_lists_the_tools_with_each_models_own_input_schema(web_server, agent):
    _, key = agent

    async def steps(session):
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in mcp(web_server, key, steps)}
    assert set(tools) == {
        "list_models",
        "get_model",
        "generate",
        "get_job",
        "cancel_job",
        "list_jobs",
        "get_credits",
        "get_usage",
        "quote",
        "topup",
        "setup_payment",
        "set_auto_topup",
    }
    generate = tools["generate"].input_schema
    assert "local/procedural-image" in generate["properties"]["model"]["enum"]
    from apps.catalog.models import AIModel

    own = AIModel.objects.get(public_model="local/procedural-image").input_schema
    assert {
        "if": {"properties": {"model": {"const": "local/procedural-image"}}},
        "then": {"properties": {"input": own}},
    } in (generate["allOf"])
    for name in ("topup", "set_auto_topup"):
        assert "charges the account's saved card" in tools[name].description
    assert "text-to-image" in tools["list_models"].input_schema["properties"]["category"]["enum"]


QUOTED = {"prompt": "a kiwi", "width": 64, "height": 64}


def test_it_generates_with_wait_and_reads_the_job_and_the_credits_as_the_api_does(web_server, agent):
    user, key = agent
    before = wallet_get(user=user).balance_micro

    async def steps(session):
        generated = await session.call_tool(
            "generate",
            {
                "model": "local/procedural-image",
                "input": {"prompt": "a kiwi", "width": 64, "height": 64},
                "wait_seconds": 30,
            },
        )
        job_id = generated.structured_content["job_id"]
        job = await session.call_tool("get_job", {"job_id": job_id})
        credits = await session.call_tool("get_credits", {})
        models = await session.call_tool("list_models", {"category": "chat"})
        bad = await session.call_tool("generate", {"model": "local/procedural-image", "input": {"width": 64}})
        odd = await session.call_tool("get_job", {"job_id": job_id, "wait_seconds": "soon"})
        quoted = await session.call_tool("quote", {"model": "local/procedural-image", "input": QUOTED})
        unquotable = await session.call_tool("quote", {"model": "local/procedural-image", "input": {"width": 64}})
        return generated, job, credits, models, bad, odd, quoted, unquotable

    generated, job, credits, models, bad, odd, quoted, unquotable = mcp(web_server, key, steps)
    assert not generated.is_error
    assert generated.structured_content["status"] == "completed"
    job_row = Job.objects.get(user=user)
    assert generated.structured_content == _api(web_server, key, "jobs.php", job_id=job_row.pk)
    assert job.structured_content == generated.structured_content
    images = [block for block in generated.content if block.type == "image"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data) == httpx.get(generated.structured_content["outputs"][0]["url"]).content

    assert credits.structured_content == _api(web_server, key, "credits.php")
    assert before - wallet_get(user=user).balance_micro == job_row.cost_micro
    assert money.credits_to_micro(str(credits.structured_content["credits"])) == before - job_row.cost_micro

    assert models.structured_content == _api(web_server, key, "models.php", category="chat")
    assert bad.is_error and bad.structured_content["error"] == "invalid_input"
    assert odd.is_error and odd.structured_content["error"] == "invalid_request"
    # quote is quote.php itself: the same JSON, errors included, and no job.
    direct = httpx.post(f"{web_server}/api/v1/quote.php", json={"model": "local/procedural-image", "input": QUOTED})
    assert quoted.structured_content == direct.json() and quoted.structured_content["public_model"]
    assert quoted.structured_content["input"]["width"] == 64 and not quoted.is_error
    refused = httpx.post(
        f"{web_server}/api/v1/quote.php", json={"model": "local/procedural-image", "input": {"width": 64}}
    )
    assert unquotable.is_error and unquotable.structured_content == refused.json()
    assert Job.objects.filter(user=user).count() == 1


def test_it_refuses_a_request_without_a_valid_key(web_server, agent):
    for headers in ({}, {"Authorization": "Bearer kw_nope"}):
        response = httpx.post(
            f"{web_server}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={**headers, "Accept": "application/json, text/event-stream"},
        )
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.fixture
def stripe_web_server(django_db_setup, localstripe):  # noqa: F811 - the localstripe fixture
    """A server process of its own, with Stripe pointed at localstripe (the session's server has no Stripe)."""
    httpx.delete(f"{localstripe}/_config/data", timeout=5.0).raise_for_status()
    port = _free_port()
    log_path = Path(ROOT / "var" / "test-web-stripe.log")
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "w") as log:
        env = service_env(PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY="1", DEBUG="0", **STRIPE_ENV)
        server = subprocess.Popen([str(ROOT / "scripts" / "web")], cwd=ROOT, env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for_http(f"{base}/healthz", server, str(log_path))
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def test_it_saves_a_card_and_tops_up_through_localstripe(stripe_web_server, celery_worker_process, catalog):
    user = make_user("mcp-buyer", credits="0", account_type="agent")
    _, key = api_key_create(user=user, name="mcp")

    async def setup(session):
        return await session.call_tool("setup_payment", {})

    setup_result = mcp(stripe_web_server, key, setup)
    assert not setup_result.is_error, setup_result.structured_content
    intent = setup_result.structured_content["setup_intent_id"]
    stripe_client().v1.setup_intents.confirm(intent, params={"payment_method": card_create()})
    confirmed = httpx.post(
        f"{stripe_web_server}/api/v1/agent_confirm_payment_method.php",
        json={"setup_intent_id": intent},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert confirmed.status_code == 200, confirmed.text

    async def topup(session):
        first = await session.call_tool("topup", {"credits": 10, "idempotency_key": "mcp-topup-1"})
        again = await session.call_tool("topup", {"credits": 10, "idempotency_key": "mcp-topup-1"})
        return first, again

    first, again = mcp(stripe_web_server, key, topup)
    assert not first.is_error, first.structured_content
    assert first.structured_content["credits_added"] == 10
    assert again.structured_content == first.structured_content  # replayed, charged once
    assert wallet_get(user=user).balance_micro == money.credits_to_micro("10")
