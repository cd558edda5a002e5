"""Real token streaming: the official `openai` SDK with `stream=True` against the real server and a real worker,
the route's upstream a local OpenAI-compatible server that streams as vLLM and Ollama do (tests/providers).

The fake holds its answer STREAM_PAUSE seconds after the first token: a first chunk that reaches the SDK before the
upstream finished shows the deltas are forwarded as they arrive, not after the job completed.
"""

import json
import time

import httpx
import openai
import pytest
from openai import OpenAI

from apps.accounts.services import api_key_create
from apps.billing.models import Hold, LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import ProviderAccount
from apps.catalog.services import provider_account_save
from apps.generations.models import Job
from tests.conftest import make_user
from tests.providers.fake_openai import FakeOpenAI

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

STREAM_PAUSE = 1.5
MODEL = "gpt-5-mini/chat"


@pytest.fixture
def upstream(catalog):
    fake = FakeOpenAI().start()
    account = ProviderAccount.objects.get(slug="openai")
    account.enabled = True
    account.base_url = fake.base_url
    provider_account_save(account=account, api_key=fake.api_key)
    yield fake
    fake.stop()


@pytest.fixture
def account(web_server, celery_worker_process, upstream):
    user = make_user("streamer", credits="5")
    _, key = api_key_create(user=user, name="stream")
    return user, key, OpenAI(base_url=f"{web_server}/v1", api_key=key, max_retries=0, timeout=60)


def _job_ended(user, timeout: float = 30) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.objects.filter(user=user).first()
        if job is not None and job.is_terminal:
            return job
        time.sleep(0.1)
    raise AssertionError("The job did not end.")


def test_it_forwards_the_upstreams_tokens_as_they_arrive_and_charges_the_job_once(account, upstream):
    user, _, client = account
    upstream.stream_pause = STREAM_PAUSE
    before = wallet_get(user=user).balance_micro
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "stream these words please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    received = []  # (monotonic time, chunk)
    for chunk in stream:
        received.append((time.monotonic(), chunk))
    first_at, first = next((at, c) for at, c in received if c.choices and c.choices[0].delta.content)
    assert first.choices[0].delta.content == "You "
    # The first token reached the SDK while the upstream was still holding the rest back.
    assert upstream.stream_finished_at is not None and first_at < upstream.stream_finished_at
    assert upstream.stream_finished_at - first_at > STREAM_PAUSE / 2
    call = upstream.calls("/v1/chat/completions")[-1]
    assert call.json["stream"] is True

    chunks = [c for _, c in received]
    job = _job_ended(user)
    assert job.status == Job.Status.COMPLETED
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: stream these words please" == job.outputs.get().text
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == [
        "You ",
        "said: ",
        "stream ",
        "these ",
        "words ",
        "please",
    ]  # each upstream delta as its own chunk, in order
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and (usage.prompt_tokens, usage.completion_tokens) == (4, 6)
    assert job.usage == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    assert all(c.id == f"chatcmpl-{job.pk}" for c in chunks)
    assert before - wallet_get(user=user).balance_micro == job.cost_micro == 10_000
    assert list(LedgerEntry.objects.filter(reference=job.pk).values_list("kind", flat=True)) == ["debit"]


def test_an_upstream_that_breaks_off_mid_stream_ends_in_an_error_event_and_costs_nothing(account, upstream):
    user, _, client = account
    upstream.stream_drop_after = 2
    before = wallet_get(user=user).balance_micro
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "this will break"}], stream=True
    )
    pieces = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    assert pieces == ["You ", "said: "]  # what came before the break, then the error, not a hang
    job = _job_ended(user)
    assert (job.status, job.error_code) == (Job.Status.FAILED, "upstream_unknown_outcome")
    assert caught.value.body["code"] == "upstream_unknown_outcome"
    assert job.pk in caught.value.message or caught.value.body.get("job_id") == job.pk
    assert len(upstream.calls("/v1/chat/completions")) == 1  # never sent again
    assert wallet_get(user=user).balance_micro == before
    assert Hold.objects.get(pk=job.hold_id).status == Hold.Status.RELEASED


def test_a_client_that_leaves_mid_stream_does_not_stop_the_job(account, upstream, web_server):
    user, key, _ = account
    upstream.stream_pause = STREAM_PAUSE
    before = wallet_get(user=user).balance_micro
    body = {"model": MODEL, "messages": [{"role": "user", "content": "I will leave early"}], "stream": True}
    with httpx.stream(
        "POST", f"{web_server}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                break  # the first token: hang up while the upstream is still pausing
    job = _job_ended(user)
    assert job.status == Job.Status.COMPLETED
    assert job.outputs.get().text == "You said: I will leave early"
    assert before - wallet_get(user=user).balance_micro == job.cost_micro


def test_only_a_streamed_v1_chat_asks_the_upstream_to_stream(account, upstream, web_server):
    user, key, client = account
    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "whole"}])
    assert completion.choices[0].message.content == "You said: whole"
    # generate.php itself: the option lives in the facade's in-process call, no request from outside can set it.
    submitted = httpx.post(
        f"{web_server}/api/v1/generate.php",
        json={"model": MODEL, "input": {"prompt": "direct"}},
        headers={"Authorization": f"Bearer {key}", "Prefer": "wait=30", "kiwiwhale.options": "stream_text"},
        timeout=60,
    ).json()
    assert submitted["status"] == "completed"
    calls = upstream.calls("/v1/chat/completions")
    assert len(calls) == 2 and not any("stream" in call.json for call in calls)
    assert not Job.objects.filter(user=user, stream_text=True).exists()
