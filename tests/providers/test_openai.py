"""The OpenAI adapter (and OpenAI-compatible servers) against a local fake of OpenAI's API, through the services."""

import base64
import io
import socket

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from apps.billing.models import Hold, LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
from apps.catalog.services import provider_account_save
from apps.generations.models import Job
from apps.generations.providers import ProviderConfig, ProviderError, provider_keys_available
from apps.generations.providers.openai import OpenAICompatibleProvider, OpenAIProvider
from apps.generations.services import job_create, job_run
from tests.providers.fake_openai import HANG, HANG_AFTER, SPEECH_BYTES, FakeOpenAI, error_body

pytestmark = pytest.mark.django_db


@pytest.fixture
def openai_fake(settings):
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    settings.UPSTREAM_RETRIES = 2
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def ollama_fake(settings):
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    server = FakeOpenAI(api_key=None).start()
    yield server
    server.stop()


@pytest.fixture
def openai_connected(catalog, openai_fake):
    """The seeded `openai` account as an admin sets it up: key, organization, enabled (base URL: the fake)."""
    account = ProviderAccount.objects.get(slug="openai")
    account.enabled = True
    account.base_url = openai_fake.base_url
    account.options = {"organization": "org-kiwiwhale"}
    return provider_account_save(account=account, api_key=openai_fake.api_key)


def adapter(fake: FakeOpenAI, **options) -> OpenAIProvider:
    return OpenAIProvider(
        ProviderConfig(slug="openai", api_key=fake.api_key or "", base_url=fake.base_url, options=options)
    )


def run_job(user, public_model: str, input: dict) -> Job:
    job = job_create(user=user, model=AIModel.objects.get(public_model=public_model), input=input)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def assert_charged_once(job: Job, user, balance_micro: int) -> None:
    assert wallet_get(user=user).balance_micro == balance_micro
    assert Hold.objects.get(pk=job.hold_id).status == Hold.Status.SETTLED
    assert list(LedgerEntry.objects.filter(reference=job.pk).values_list("kind", flat=True)) == ["debit"]


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 90)).save(buffer, "PNG")
    return buffer.getvalue()


# --- chat ---------------------------------------------------------------------------------------------------


def test_it_answers_a_chat_job_and_records_the_token_usage(alice, openai_connected, openai_fake):
    job = run_job(alice, "gpt-5-mini/chat", {"prompt": "Hello there", "system": "Be brief."})
    assert job.status == "completed", job.error_message
    (call,) = openai_fake.calls("/v1/chat/completions")
    assert call.method == "POST"
    assert call.headers["authorization"] == f"Bearer {openai_fake.api_key}"
    assert call.headers["openai-organization"] == "org-kiwiwhale"
    assert call.json == {
        "model": "gpt-5-mini",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
    }
    output = job.outputs.get()
    assert (output.type, output.content_type, output.text) == ("text", "text/plain", "You said: Hello there")
    assert job.usage == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    assert job.provider == "openai"
    assert_charged_once(job, alice, 9_990_000)
    job_run(job_id=job.pk)  # a duplicate delivery of the task does nothing
    assert len(openai_fake.calls("/v1/chat/completions")) == 1
    assert ProviderAccount.objects.get(slug="openai").last_success_at is not None


def test_it_sends_no_system_message_when_none_is_given(openai_fake):
    adapter(openai_fake).run(upstream_model="gpt-5.5", params={"operation": "chat"}, input={"prompt": "Hi"})
    assert openai_fake.requests[-1].json["messages"] == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    "message",
    [
        {"role": "assistant", "content": None, "refusal": "I can't help with that."},
        {"role": "assistant", "content": ""},
    ],
)
def test_a_refused_or_filtered_answer_is_a_final_content_policy_error(openai_fake, message):
    finish = "stop" if message.get("refusal") else "content_filter"
    openai_fake.script = [(200, {}, {"choices": [{"index": 0, "message": message, "finish_reason": finish}]})]
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake).run(upstream_model="gpt-5-mini", params={"operation": "chat"}, input={"prompt": "x"})
    assert (info.value.code, info.value.retryable) == ("content_policy", False)


# --- images -------------------------------------------------------------------------------------------------


def test_it_generates_images_and_keeps_them_in_our_storage(alice, openai_connected, openai_fake):
    job = run_job(
        alice,
        "gpt-image-2/text-to-image",
        {"prompt": "a kiwi on a whale", "size": "1536x1024", "quality": "high", "num_images": 2},
    )
    assert job.status == "completed", job.error_message
    (call,) = openai_fake.calls("/v1/images/generations")
    assert call.headers["authorization"] == f"Bearer {openai_fake.api_key}"
    # gpt-image models always answer in base64 and refuse `response_format`: it must not be sent.
    assert call.json == {
        "model": "gpt-image-2",
        "prompt": "a kiwi on a whale",
        "size": "1536x1024",
        "quality": "high",
        "n": 2,
    }
    outputs = list(job.outputs.all())
    assert len(outputs) == 2
    for output in outputs:
        assert (output.type, output.content_type, output.width, output.height) == ("image", "image/png", 1536, 1024)
        assert default_storage.exists(output.file.name)
        assert output.file_size == default_storage.size(output.file.name) > 0
        with default_storage.open(output.file.name) as handle, Image.open(handle) as image:
            assert (image.format, image.size) == ("PNG", (1536, 1024))
    assert job.usage == {"images": 2, "input_tokens": 50, "output_tokens": 52, "total_tokens": 102}
    assert_charged_once(job, alice, 9_600_000)  # 0.2 per image


def test_it_downloads_images_answered_as_links_without_sending_the_key_there(settings):
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    server = FakeOpenAI(api_key="sk-local", images_as_url=True).start()
    try:
        provider = OpenAICompatibleProvider(
            ProviderConfig(slug="localai", api_key="sk-local", base_url=server.base_url)
        )
        result = provider.run(
            upstream_model="dall-e-3",
            params={"operation": "image_generation"},
            input={"prompt": "p", "size": "256x256"},
        )
        (download,) = [r for r in server.requests if r.path.startswith("/files/")]
        assert "authorization" not in download.headers
        (output,) = result.outputs
        assert (output.content_type, output.width, output.height) == ("image/png", 256, 256)
        assert output.content == server.files[download.path.removeprefix("/files/")]
    finally:
        server.stop()


def test_it_edits_an_earlier_output_sent_as_multipart(alice, alice_api, openai_connected, openai_fake):
    first = run_job(alice, "local/procedural-image", {"prompt": "source", "width": 640, "height": 480, "seed": 1})
    image_url = alice_api.get("/api/v1/jobs.php", {"job_id": first.pk}).json()["outputs"][0]["url"]
    assert image_url.startswith("http://testserver/")
    job = run_job(alice, "gpt-image-2/image-edit", {"prompt": "add a hat", "image_url": image_url, "size": "1024x1536"})
    assert job.status == "completed", job.error_message
    (call,) = openai_fake.calls("/v1/images/edits")
    assert call.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert call.headers["authorization"] == f"Bearer {openai_fake.api_key}"
    assert call.form == {"model": "gpt-image-2", "prompt": "add a hat", "size": "1024x1536"}
    ((file_name, content_type, content),) = call.files["image"]
    with first.outputs.get().file.open("rb") as handle:
        assert content == handle.read()
    assert (file_name, content_type) == ("image.png", "image/png")
    output = job.outputs.get()
    assert (output.type, output.width, output.height) == ("image", 1024, 1536)
    assert default_storage.exists(output.file.name)


def test_it_transforms_an_image_given_as_a_data_url(openai_fake):
    data_url = "data:image/png;base64," + base64.b64encode(png(300, 200)).decode()
    result = adapter(openai_fake).run(
        upstream_model="gpt-image-2", params={"operation": "image_edit"}, input={"prompt": "ink", "image_url": data_url}
    )
    (call,) = openai_fake.calls("/v1/images/edits")
    assert call.form == {"model": "gpt-image-2", "prompt": "ink"}
    assert call.files["image"][0][2] == png(300, 200)
    assert (result.outputs[0].width, result.outputs[0].height) == (300, 200)


def test_an_edit_refuses_an_input_that_is_not_an_image(openai_fake):
    data_url = "data:text/plain;base64," + base64.b64encode(b"hello").decode()
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake).run(
            upstream_model="gpt-image-2",
            params={"operation": "image_edit"},
            input={"prompt": "x", "image_url": data_url},
        )
    assert info.value.retryable is False
    assert openai_fake.requests == []


def test_a_content_policy_rejection_fails_the_job_without_retry_and_refunds_it(alice, openai_connected, openai_fake):
    openai_fake.script = [
        (
            400,
            {},
            error_body(
                "Your request was rejected by the safety system.",
                type="image_generation_user_error",
                code="moderation_blocked",
            ),
        )
    ]
    job = run_job(alice, "gpt-image-2/text-to-image", {"prompt": "something forbidden"})
    assert job.status == "failed" and job.error_code == "upstream_rejected"
    assert "rejected by the safety system" in job.error_message
    assert len(openai_fake.calls("/v1/images/generations")) == 1
    assert wallet_get(user=alice).balance_micro == 10_000_000
    assert Hold.objects.get(pk=job.hold_id).status == Hold.Status.RELEASED


# --- speech -------------------------------------------------------------------------------------------------


def test_it_speaks_a_text_priced_by_its_length(alice, openai_connected, openai_fake):
    text = "Kiwis cannot fly. " * 100  # 1,800 characters
    job = run_job(alice, "openai/tts", {"text": text, "voice": "coral", "instructions": "Cheerful."})
    assert job.status == "completed", job.error_message
    (call,) = openai_fake.calls("/v1/audio/speech")
    assert call.json == {
        "model": "gpt-4o-mini-tts",
        "input": text,
        "voice": "coral",
        "instructions": "Cheerful.",
        "response_format": "mp3",
    }
    output = job.outputs.get()
    assert (output.type, output.content_type, output.file_name) == ("audio", "audio/mpeg", "speech.mp3")
    assert output.file_size == len(SPEECH_BYTES)
    with output.file.open("rb") as handle:
        assert handle.read() == SPEECH_BYTES
    assert job.usage == {"characters": 1800}
    assert job.cost_micro == 54_000  # 0.03 per 1,000 characters
    assert_charged_once(job, alice, 10_000_000 - 54_000)


# --- OpenAI-compatible servers ------------------------------------------------------------------------------


def test_a_keyless_compatible_server_is_usable_while_openai_needs_its_key(catalog, ollama_fake, anon_api):
    def listed():
        return {m["public_model"] for m in anon_api.get("/api/v1/models.php").json()["models"]}

    openai = ProviderAccount.objects.get(slug="openai")
    openai.enabled = True
    provider_account_save(account=openai)
    assert "openai" not in provider_keys_available() and "gpt-5-mini/chat" not in listed()
    ProviderAccount.objects.create(slug="ollama", kind="openai_compatible", enabled=True, base_url=ollama_fake.base_url)
    model = AIModel.objects.get(public_model="gpt-5-mini/chat")
    ModelRoute.objects.create(model=model, provider="ollama", upstream_model="llama3.2", params={"operation": "chat"})
    assert "ollama" in provider_keys_available() and "gpt-5-mini/chat" in listed()


def test_an_ollama_route_serves_the_job_when_openai_keeps_failing(alice, openai_connected, openai_fake, ollama_fake):
    ProviderAccount.objects.create(slug="ollama", kind="openai_compatible", enabled=True, base_url=ollama_fake.base_url)
    model = AIModel.objects.get(public_model="gpt-5-mini/chat")
    ModelRoute.objects.create(
        model=model, provider="ollama", upstream_model="llama3.2", params={"operation": "chat"}, priority=99
    )
    # 503: OpenAI refused the request before doing any of it, so sending it again (then elsewhere) is safe.
    openai_fake.script = [(503, {}, error_body("The engine is currently overloaded.", type="server_error"))] * 3
    job = run_job(alice, "gpt-5-mini/chat", {"prompt": "Are you there?"})
    assert job.status == "completed" and job.provider == "ollama"
    assert job.outputs.get().text == "You said: Are you there?"
    assert len(openai_fake.calls("/v1/chat/completions")) == 3  # the first try and two retries
    (call,) = ollama_fake.calls("/v1/chat/completions")
    assert "authorization" not in call.headers  # a keyless server gets no Authorization header
    assert call.json["model"] == "llama3.2"
    assert "HTTP 503" in ProviderAccount.objects.get(slug="openai").last_error
    assert_charged_once(job, alice, 9_990_000)


def test_a_compatible_account_without_a_base_url_is_refused():
    with pytest.raises(ProviderError) as info:
        OpenAICompatibleProvider(ProviderConfig(slug="vllm")).run(upstream_model="m", params={}, input={"prompt": "x"})
    assert (info.value.code, info.value.retryable) == ("provider_misconfigured", False)


def test_it_sends_the_extra_headers_an_account_sets(openai_fake):
    provider = adapter(openai_fake, headers={"HTTP-Referer": "https://kiwi.example", "X-Title": "KiwiWhale"})
    provider.run(upstream_model="openai/gpt-5-mini", params={}, input={"prompt": "hi"})
    call = openai_fake.requests[-1]
    assert (call.headers["http-referer"], call.headers["x-title"]) == ("https://kiwi.example", "KiwiWhale")


# --- upstream failures --------------------------------------------------------------------------------------


def test_a_rejected_key_fails_the_job_at_once_and_shows_on_the_account(alice, openai_connected, openai_fake):
    provider_account_save(account=openai_connected, api_key="sk-wrong-key-987")
    job = run_job(alice, "gpt-5-mini/chat", {"prompt": "hi"})
    assert job.status == "failed" and job.error_code == "upstream_auth"
    assert "sk-wrong" not in job.error_message
    assert len(openai_fake.requests) == 1  # a 401 is not retried
    assert openai_fake.requests[0].headers["authorization"] == "Bearer sk-wrong-key-987"
    account = ProviderAccount.objects.get(slug="openai")
    assert account.last_error == job.error_message and not account.healthy
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_a_429_with_retry_after_is_retried_then_succeeds(openai_fake):
    openai_fake.script = [
        (
            429,
            {"Retry-After": "0"},
            error_body("Rate limit reached for requests", type="requests", code="rate_limit_exceeded"),
        )
    ]
    result = adapter(openai_fake).run(upstream_model="gpt-5-mini", params={"operation": "chat"}, input={"prompt": "a"})
    assert result.outputs[0].text == "You said: a"
    assert len(openai_fake.calls("/v1/chat/completions")) == 2


def test_a_503_is_retried_and_then_retryable(openai_fake):
    openai_fake.script = [(503, {}, error_body("The server is overloaded.", type="server_error"))] * 3
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake).run(upstream_model="gpt-5-mini", params={}, input={"prompt": "a"})
    assert (info.value.code, info.value.retryable) == ("upstream_error", True)
    assert len(openai_fake.requests) == 3


@pytest.mark.parametrize("status", [500, 502, 504])
def test_another_5xx_after_a_post_is_not_sent_again(openai_fake, status):
    # The request reached OpenAI (or its gateway) and failed somewhere inside: the work may have been done.
    openai_fake.script = [(status, {}, error_body("The server had an error.", type="server_error"))] * 3
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake).run(upstream_model="gpt-5-mini", params={}, input={"prompt": "a"})
    assert (info.value.code, info.value.retryable) == ("upstream_unknown_outcome", False)
    assert f"HTTP {status}" in info.value.message
    assert len(openai_fake.requests) == 1


def test_a_request_that_gets_no_answer_in_time_is_not_sent_again(openai_fake, settings):
    settings.UPSTREAM_RETRIES = 2
    openai_fake.script = [HANG]
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake, timeout_seconds=0.3).run(upstream_model="gpt-5-mini", params={}, input={"prompt": "a"})
    assert (info.value.code, info.value.retryable) == ("upstream_unknown_outcome", False)
    assert "did not answer in time" in info.value.message
    assert len(openai_fake.requests) == 1


def test_an_image_made_upstream_whose_answer_times_out_is_paid_upstream_once_and_refunded(
    alice, openai_connected, openai_fake, ollama_fake
):
    # With retries, a slow gpt-image job reached OpenAI three times; each image is paid for upstream.
    openai_connected.options = {**openai_connected.options, "timeout_seconds": 0.5}
    openai_connected.save()
    ProviderAccount.objects.create(slug="ollama", kind="openai_compatible", enabled=True, base_url=ollama_fake.base_url)
    ModelRoute.objects.create(
        model=AIModel.objects.get(public_model="gpt-image-2/text-to-image"),
        provider="ollama",
        upstream_model="local-image",
        params={"operation": "image_generation"},
        priority=99,
    )
    openai_fake.script = [HANG_AFTER]
    job = run_job(alice, "gpt-image-2/text-to-image", {"prompt": "a slow whale"})

    assert (job.status, job.error_code) == ("failed", "upstream_unknown_outcome")
    assert len(openai_fake.calls("/v1/images/generations")) == 1 and openai_fake.generated == 1
    assert ollama_fake.requests == []  # nor made a second time elsewhere
    assert wallet_get(user=alice).balance_micro == 10_000_000
    assert LedgerEntry.objects.filter(reference=job.pk, kind=LedgerEntry.Kind.REFUND).count() == 1


def test_a_server_that_refuses_the_connection_is_tried_again(openai_fake, monkeypatch):
    # Nothing was sent: a connection refused is safe to try again, even for a POST.
    waits = []
    monkeypatch.setattr("apps.generations.providers.http.time.sleep", waits.append)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    closed_port = listener.getsockname()[1]
    listener.close()
    provider = OpenAIProvider(
        ProviderConfig(slug="openai", api_key="sk-x", base_url=f"http://127.0.0.1:{closed_port}/v1")
    )
    with pytest.raises(ProviderError) as info:
        provider.run(upstream_model="gpt-5-mini", params={}, input={"prompt": "a"})
    assert (info.value.code, info.value.retryable) == ("upstream_unreachable", True)
    assert len(waits) == 2  # the first try and UPSTREAM_RETRIES more


def test_a_base_url_on_a_private_host_needs_the_admins_allowlist(openai_fake, settings):
    settings.FETCH_PRIVATE_HOST_ALLOWLIST = []
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake).run(upstream_model="gpt-5-mini", params={}, input={"prompt": "a"})
    assert (info.value.code, info.value.retryable) == ("upstream_address_refused", False)
    assert "FETCH_PRIVATE_HOST_ALLOWLIST" in info.value.message
    assert openai_fake.requests == []
    settings.FETCH_PRIVATE_HOST_ALLOWLIST = ["127.0.0.0/8"]
    assert adapter(openai_fake).run(upstream_model="gpt-5-mini", params={}, input={"prompt": "a"}).outputs


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("chat", b"<html>Bad gateway</html>"),
        ("chat", {"choices": []}),
        ("chat", {"id": "chatcmpl-1", "object": "chat.completion"}),
        ("chat", {"choices": [{"message": {"role": "assistant", "content": 42}}]}),
        ("image_generation", {"data": [{"b64_json": "%%% not base64 %%%"}]}),
        ("image_generation", {"data": [{"b64_json": base64.b64encode(b"not a picture").decode()}]}),
        ("image_generation", {"data": []}),
        ("tts", b""),
    ],
)
def test_a_malformed_answer_is_a_retryable_error(openai_fake, operation, body):
    openai_fake.script = [(200, {"Content-Type": "application/octet-stream"} if body == b"" else {}, body)]
    input = {"text": "hello", "voice": "alloy"} if operation == "tts" else {"prompt": "a"}
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake).run(upstream_model="gpt-x", params={"operation": operation}, input=input)
    assert (info.value.code, info.value.retryable) == ("upstream_malformed", True)


def test_an_unknown_operation_is_a_configuration_error(openai_fake):
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake).run(upstream_model="gpt-5-mini", params={"operation": "embeddings"}, input={})
    assert (info.value.code, info.value.retryable) == ("provider_misconfigured", False)
    assert openai_fake.requests == []


# --- streamed chat ------------------------------------------------------------------------------------------


def test_a_streamed_chat_hands_each_delta_over_as_it_arrives_and_keeps_the_whole_answer(openai_fake):
    pieces = []
    result = adapter(openai_fake).run(
        upstream_model="gpt-5-mini",
        params={"operation": "chat"},
        input={"prompt": "one two three"},
        on_text=pieces.append,
    )
    call = openai_fake.calls("/v1/chat/completions")[-1]
    assert call.json["stream"] is True and call.json["stream_options"] == {"include_usage": True}
    assert pieces == ["You ", "said: ", "one ", "two ", "three"]
    assert result.outputs[0].text == "You said: one two three"
    assert result.usage == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


def test_a_route_that_says_stream_false_is_asked_without_streaming(openai_fake):
    pieces = []
    result = adapter(openai_fake).run(
        upstream_model="m", params={"operation": "chat", "stream": False}, input={"prompt": "hi"}, on_text=pieces.append
    )
    assert "stream" not in openai_fake.calls("/v1/chat/completions")[-1].json
    assert pieces == [] and result.outputs[0].text == "You said: hi"


def test_an_error_chunk_inside_the_stream_is_a_final_upstream_failure(openai_fake):
    events = b'data: {"choices":[{"delta":{"content":"Hel"}}]}\n\ndata: {"error":{"message":"CUDA out of memory"}}\n\n'
    openai_fake.script = [(200, {"Content-Type": "text/event-stream"}, iter([events]))]
    with pytest.raises(ProviderError) as info:
        adapter(openai_fake).run(upstream_model="m", params={}, input={"prompt": "x"}, on_text=lambda text: None)
    assert (info.value.code, info.value.retryable) == ("upstream_failed", False)
    assert "CUDA out of memory" in info.value.message


def test_a_stream_broken_off_fails_the_job_once_published_and_returns_every_credit(
    alice, openai_connected, openai_fake, django_capture_on_commit_callbacks
):
    import redis
    from django.conf import settings

    from apps.generations.streams import _key

    openai_fake.stream_drop_after = 2
    before = wallet_get(user=alice).balance_micro
    job = job_create(
        user=alice,
        model=AIModel.objects.get(public_model="gpt-5-mini/chat"),
        input={"prompt": "a b c"},
        stream_text=True,
    )
    with django_capture_on_commit_callbacks(execute=True):
        job_run(job_id=job.pk)
    job.refresh_from_db()
    # The upstream received it and worked: never sent again, by this route or another.
    assert (job.status, job.error_code) == ("failed", "upstream_unknown_outcome")
    assert len(openai_fake.calls("/v1/chat/completions")) == 1
    assert wallet_get(user=alice).balance_micro == before
    assert Hold.objects.get(pk=job.hold_id).status == Hold.Status.RELEASED
    entries = redis.Redis.from_url(settings.REDIS_URL).xrange(_key(job.pk))
    assert [fields for _, fields in entries] == [{b"d": b"You "}, {b"d": b"said: "}, {b"end": b"failed"}]
    assert 0 < redis.Redis.from_url(settings.REDIS_URL).ttl(_key(job.pk)) <= 900
