"""The official `openai` SDK, unchanged, against the real server (uvicorn, ASGI) and a real worker.

Every call is a job of the account: each test checks that the wallet moved by exactly that job's cost, and that the
job is in the account's history like any other.
"""

import base64
import io
import json

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from apps.accounts.services import api_key_create
from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.conftest import make_user
from tests.generations.media_samples import decode, png

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def account(web_server, celery_worker_process, catalog):
    user = make_user("sdk-user", credits="5")
    _, key = api_key_create(user=user, name="openai-sdk")
    client = OpenAI(base_url=f"{web_server}/v1", api_key=key, max_retries=0, timeout=60)
    return user, client


def _balance(user) -> int:
    return wallet_get(user=user).balance_micro


def _only_job(user) -> Job:
    jobs = list(Job.objects.filter(user=user))
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_it_lists_only_the_models_servable_through_v1_and_finds_one_by_an_id_with_slashes(account):
    _, client = account
    ids = [model.id for model in client.models.list()]
    assert "local/echo-chat" in ids and "local/procedural-image" in ids
    assert "gpt-5-mini/chat" not in ids  # its provider has no account here
    assert "ffmpeg/extract-frame" not in ids  # a tool: not an OpenAI endpoint
    model = client.models.retrieve("local/procedural-image")
    assert (model.id, model.object, model.owned_by) == ("local/procedural-image", "model", "kiwiwhale")
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("gpt-5-mini/chat")
    assert caught.value.body["code"] == "model_not_found"


def test_it_answers_a_chat_completion_as_a_job_charged_once(account):
    user, client = account
    before = _balance(user)
    completion = client.chat.completions.create(
        model="local/echo-chat",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Two words here."}],
    )
    job = _only_job(user)
    assert completion.id == f"chatcmpl-{job.pk}"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == job.outputs.get().text
    assert "3 words" in completion.choices[0].message.content or "words" in completion.choices[0].message.content
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens > 0
    assert job.input == {"prompt": "Two words here.", "system": "Be brief."}
    assert job.api_key is not None  # the key's job, as with generate.php
    assert before - _balance(user) == job.cost_micro == 1000
    assert LedgerEntry.objects.filter(wallet__user=user, kind=LedgerEntry.Kind.DEBIT).count() == 1


def test_it_streams_a_chat_completion_as_server_sent_events_with_usage_last(account):
    user, client = account
    before = _balance(user)
    stream = client.chat.completions.create(
        model="local/echo-chat",
        messages=[{"role": "user", "content": "Stream this sentence please."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    job = _only_job(user)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == job.outputs.get().text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # in pieces, not one blob
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert before - _balance(user) == job.cost_micro


def test_it_refuses_a_parameter_the_model_cannot_honour_and_charges_nothing(account):
    user, client = account
    before = _balance(user)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="local/echo-chat", messages=[{"role": "user", "content": "hi"}], temperature=0.2
        )
    assert caught.value.body["code"] == "unsupported_parameter"
    assert "temperature" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="local/procedural-image", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_supported"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no/such-model", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as caught:  # the model's schema, through generate.php
        client.chat.completions.create(model="local/echo-chat", messages=[{"role": "user", "content": ""}])
    assert (caught.value.body["code"], caught.value.body["param"]) == ("invalid_input", "prompt")
    assert _balance(user) == before and not Job.objects.filter(user=user).exists()


def test_it_generates_images_as_b64_json_and_as_urls(account, web_server):
    user, client = account
    before = _balance(user)
    answer = client.images.generate(
        model="local/procedural-image", prompt="a kiwi", n=2, size="96x64", response_format="b64_json"
    )
    assert len(answer.data) == 2
    picture = Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json)))
    assert picture.size == (96, 64)
    job = _only_job(user)
    assert job.input["num_images"] == 2
    assert before - _balance(user) == job.cost_micro == 20000  # 0.01 per image

    answer = client.images.generate(model="local/procedural-image", prompt="a kiwi", size="64x64")
    url = answer.data[0].url
    assert url.startswith(f"{web_server}/")
    assert Image.open(io.BytesIO(httpx.get(url).content)).size == (64, 64)
    assert before - _balance(user) == sum(Job.objects.filter(user=user).values_list("cost_micro", flat=True))


def test_it_edits_an_image_sent_as_multipart(account):
    user, client = account
    before = _balance(user)
    answer = client.images.edit(
        model="local/image-filter",
        image=("kiwi.png", png(80, 60), "image/png"),
        prompt="grayscale",
        response_format="b64_json",
    )
    picture = Image.open(io.BytesIO(base64.b64decode(answer.data[0].b64_json)))
    assert picture.size == (80, 60)
    job = _only_job(user)
    assert job.input["filter"] == "grayscale"
    assert before - _balance(user) == job.cost_micro
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.edit(model="local/image-filter", image=("k.png", png(8, 8), "image/png"), prompt="make it pop")
    assert caught.value.body["code"] == "unsupported_value"


def test_it_speaks_and_transcribes(account):
    user, client = account
    before = _balance(user)
    speech = client.audio.speech.create(
        model="local/text-to-speech", voice="alloy", input="one two three", response_format="wav"
    )
    audio = speech.content
    assert audio[:4] == b"RIFF" and decode(audio).duration > 0.5
    spoken = _only_job(user)
    assert (spoken.input["voice"], spoken.input["variant"], spoken.input["format"]) == ("en-us", "female", "wav")

    transcript = client.audio.transcriptions.create(model="local/speech-to-text", file=("speech.wav", audio))
    heard = Job.objects.filter(user=user).exclude(pk=spoken.pk).get()
    assert transcript.text == heard.outputs.get().text
    assert before - _balance(user) == spoken.cost_micro + heard.cost_micro

    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.speech.create(model="local/text-to-speech", voice="alloy", input="hi", response_format="opus")
    assert caught.value.body["code"] == "unsupported_value"


def test_it_surfaces_402_and_401_as_the_sdks_errors(web_server, celery_worker_process, catalog):
    poor = make_user("poor")
    _, key = api_key_create(user=poor, name="k")
    client = OpenAI(base_url=f"{web_server}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.images.generate(model="local/procedural-image", prompt="a kiwi")
    assert caught.value.status_code == 402
    error = caught.value.body
    assert (error["code"], error["type"]) == ("insufficient_credits", "insufficient_quota")
    # The contract's hints travel inside the error: at least a code to redeem and the billing page.
    ways = {(way["method"], way["url"]) for way in error["topup"]["ways"]}
    assert {("POST", f"{web_server}/api/v1/redeem.php"), ("GET", f"{web_server}/billing.php")} <= ways
    assert not Job.objects.filter(user=poor).exists()

    stranger = OpenAI(base_url=f"{web_server}/v1", api_key="kw_not_a_key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        stranger.chat.completions.create(model="local/echo-chat", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["code"] == "invalid_api_key"


def test_it_honours_an_idempotency_key(account):
    user, client = account
    before = _balance(user)
    for _ in range(2):
        completion = client.chat.completions.create(
            model="local/echo-chat",
            messages=[{"role": "user", "content": "Once only."}],
            extra_headers={"Idempotency-Key": "chat-once-1"},
        )
    job = _only_job(user)
    assert completion.id == f"chatcmpl-{job.pk}"
    assert before - _balance(user) == job.cost_micro


def test_a_job_that_fails_returns_its_credits_and_an_sdk_error(account):
    user, client = account
    before = _balance(user)
    with pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(model="local/speech-to-text", file=("noise.wav", b"not audio at all"))
    job = _only_job(user)
    assert job.status == Job.Status.FAILED
    assert caught.value.body["code"] == job.error_code and caught.value.body["job_id"] == job.pk
    assert _balance(user) == before  # the hold was released


def test_it_keeps_retry_after_on_a_429():
    from apps.openai_api.errors import error_from_api

    error = error_from_api(
        429, {"success": False, "error": "rate_limited", "message": "Slow down."}, {"Retry-After": "7"}
    )
    response = error.response()
    assert response.status_code == 429 and response["Retry-After"] == "7"
    assert json.loads(response.content)["error"] == {
        "message": "Slow down.",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
