"""The Python client, unchanged, against the real server (uvicorn) and a real Celery worker.

Each flow checks that the wallet moved by exactly the job's cost, with the ledger invariant checked after every test.
"""

from decimal import Decimal

import pytest
from kiwiwhale_client import (
    APIConnectionError,
    AsyncKiwiWhale,
    InsufficientCredits,
    InvalidInput,
    JobNotCancelable,
    KiwiWhale,
)
from PIL import Image

from apps.accounts.models import User
from apps.billing import money
from apps.billing.services import credits_grant, wallet_get
from apps.generations.models import Job
from tests.api.conftest import SLOW_MODEL, endless_fal  # noqa: F401 - a fixture
from tests.client.conftest import run_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SMALL = {"prompt": "a kiwi on a whale", "width": 64, "height": 64}


def _balance(user) -> int:
    return wallet_get(user=user).balance_micro


def test_it_runs_the_whole_agent_flow(web_server, celery_worker_process, catalog, endless_fal, tmp_path):  # noqa: F811
    client = KiwiWhale(base_url=web_server, api_key=None)
    registration = client.register(name="Client agent")
    assert registration["api_key"].startswith("kw_") and client.api_key == registration["api_key"]
    user = User.objects.get(pk=registration["user_id"])

    with pytest.raises(InsufficientCredits) as refused:  # a new account has no credits: a typed 402
        client.generate("local/procedural-image", SMALL)
    assert refused.value.code == "insufficient_credits" and refused.value.status == 402
    assert refused.value.required == Decimal("0.01") and refused.value.topup  # where credits come from
    credits_grant(user=user, amount_micro=money.credits_to_micro("3"), reason="test", idempotency_key="client:grant")

    models = {model["public_model"]: model for model in client.models(category="text-to-image")}
    assert "local/procedural-image" in models and all(m["category"] == "text-to-image" for m in models.values())
    quote = client.quote("local/procedural-image", SMALL)
    assert quote["input"]["prompt"] == SMALL["prompt"] and isinstance(quote["cost_credits"], Decimal)
    with pytest.raises(InvalidInput) as invalid:
        client.quote("local/procedural-image", {"width": 64})
    assert invalid.value.code == "invalid_input" and invalid.value.details

    before = _balance(user)
    seen = []
    job = client.generate("local/procedural-image", SMALL, wait=60, on_update=lambda update: seen.append(update))
    assert job["status"] == "completed", job
    assert job["cost_credits"] == quote["cost_credits"]
    assert seen[0]["status"] == "completed"  # Prefer: wait answered the finished job: no poll was needed
    row = Job.objects.get(pk=job["job_id"])
    assert before - _balance(user) == row.cost_micro == money.credits_to_micro(str(quote["cost_credits"]))

    paths = client.download(job, tmp_path / "out")
    assert len(paths) == len(job["outputs"]) == 1
    with Image.open(paths[0]) as image:
        assert image.format == "PNG" and image.size == (64, 64)

    assert client.job(job["job_id"]) == job
    listed = client.jobs(status="completed")
    assert [listed_job["job_id"] for listed_job in listed["jobs"]] == [job["job_id"]]
    with pytest.raises(JobNotCancelable):
        client.cancel(job["job_id"])

    slow = client.generate(SLOW_MODEL, {"prompt": "a long one"})  # an upstream that never finishes
    assert slow["status"] == "queued" and _balance(user) < before - row.cost_micro
    canceled = client.cancel(slow["job_id"])
    assert canceled["status"] == "canceled"

    credits = client.credits()
    assert money.credits_to_micro(str(credits["credits"])) == _balance(user) == before - row.cost_micro
    usage = client.usage(limit=10)
    assert {entry["kind"] for entry in usage["entries"]} >= {"grant", "debit", "refund"}
    client.close()


def test_the_async_client_generates_and_reads_the_wallet(web_server, agent, tmp_path):
    async def flow():
        async with AsyncKiwiWhale(agent.raw_key, base_url=web_server) as client:
            before = await client.credits()
            job = await client.generate("local/procedural-image", SMALL, wait=True)
            paths = await client.download(job, tmp_path)
            return before, job, paths, await client.credits()

    before, job, paths, after = run_async(flow)
    assert job["status"] == "completed" and paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert before["credits"] - after["credits"] == job["cost_credits"] > 0
    assert money.credits_to_micro("5") - _balance(agent) == Job.objects.get(pk=job["job_id"]).cost_micro


def test_it_sends_a_lost_answer_again_with_the_same_key_and_is_charged_once(web_server, agent, lossy_proxy):
    proxy = lossy_proxy(drop=1)
    with KiwiWhale(agent.raw_key, base_url=proxy.url) as client:
        job = client.generate("local/procedural-image", SMALL, wait=30)
    assert proxy.dropped == 1 and proxy.connections >= 2
    assert job["status"] == "completed"
    assert Job.objects.filter(user=agent).count() == 1  # the retry was answered the first job, not a second one
    assert money.credits_to_micro("5") - _balance(agent) == Job.objects.get(user=agent).cost_micro

    proxy = lossy_proxy(drop=1)
    with KiwiWhale(agent.raw_key, base_url=proxy.url) as client, pytest.raises(APIConnectionError):
        client.credits()  # no Idempotency-Key: never sent twice
    assert proxy.connections == 1
