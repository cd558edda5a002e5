"""The fal.ai adapter against a fake fal Queue API: what we send, the status flow, the files we keep, the errors."""

import base64

import pytest

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
from apps.generations.models import Job
from apps.generations.providers import Pending, ProviderConfig, ProviderError, RunResult
from apps.generations.providers.fal import FalProvider
from apps.generations.providers.hosted import upstream_input
from apps.generations.services import job_cancel, job_create, job_poll, job_run
from tests.providers.conftest import account_connect
from tests.providers.fakes import answer, mp4_bytes, png_bytes, wav_bytes

Z_IMAGE = "fal-ai/z-image/turbo"


def _fal(fake) -> FalProvider:
    return FalProvider(ProviderConfig(slug="fal", api_key=fake.key, base_url=fake.url))


def _run_to_end(provider, *, upstream_model=Z_IMAGE, params=None, input=None):
    params, input = params or {}, input or {"prompt": "a whale"}
    outcome = provider.run(upstream_model=upstream_model, params=params, input=input)
    for _ in range(5):
        if not isinstance(outcome, Pending):
            return outcome
        outcome = provider.poll(upstream_model=upstream_model, params=params, input=input, state=outcome.state)
    raise AssertionError("the fake never completed")


def _job(user, public_model: str, **input) -> Job:
    return job_create(user=user, model=AIModel.objects.get(public_model=public_model), input=input)


def _finish(job: Job, polls: int = 5) -> Job:
    job_run(job_id=job.pk)
    for _ in range(polls):
        job.refresh_from_db()
        if job.status != Job.Status.PROCESSING:
            break
        job_poll(job_id=job.pk)
    job.refresh_from_db()
    return job


def _refunds(user) -> int:
    return LedgerEntry.objects.filter(wallet__user=user, kind=LedgerEntry.Kind.REFUND).count()


# --- The documented flow, through the services ----------------------------------------------------------


@pytest.mark.django_db
def test_it_submits_polls_the_queue_and_keeps_the_images(alice, alice_api, fal_account, fal_fake, polls):
    job = _job(alice, "z-image", prompt="a whale on a kiwi", seed=7)
    job_run(job_id=job.pk)

    [submit] = fal_fake.seen("POST")
    assert submit.path == "/fal-ai/z-image/turbo"
    assert submit.headers["authorization"] == "Key fal-test-key"
    assert submit.headers["content-type"] == "application/json"
    assert submit.json == {"prompt": "a whale on a kiwi", "seed": 7, "image_size": "landscape_4_3", "num_images": 1}
    [request_id] = fal_fake.jobs
    job.refresh_from_db()
    assert (job.status, job.upstream_id, polls) == ("processing", request_id, [job.pk])

    job_poll(job_id=job.pk)  # IN_QUEUE
    job_poll(job_id=job.pk)  # IN_PROGRESS
    job.refresh_from_db()
    assert job.status == "processing" and job.upstream_state["status"] == "IN_PROGRESS"
    job_poll(job_id=job.pk)  # COMPLETED: the result is fetched and its files downloaded
    job.refresh_from_db()
    assert job.status == "completed"

    # Status and result live under the app id: the model's sub-path ("/turbo") is not part of them.
    app_requests = f"/fal-ai/z-image/requests/{request_id}"
    assert [r.path for r in fal_fake.seen("GET") if r.path != "/files/z.png"] == [f"{app_requests}/status"] * 3 + [
        app_requests
    ]
    assert all(r.headers["authorization"] == "Key fal-test-key" for r in fal_fake.seen("GET", app_requests))
    [download] = fal_fake.seen("GET", "/files/z.png")
    assert "authorization" not in download.headers  # the key never goes to the file host

    output = job.outputs.get()
    assert (output.type, output.content_type, output.width, output.height) == ("image", "image/png", 64, 48)
    with output.file.open("rb") as stored:
        assert stored.read() == fal_fake.files["z.png"][0]
    assert output.file_size == len(fal_fake.files["z.png"][0]) and output.file_name.endswith(".png")
    body = alice_api.get("/api/v1/jobs.php", {"job_id": job.pk}).json()
    url = body["outputs"][0]["url"]
    assert url.startswith("http://testserver/media/outputs/") and fal_fake.url not in url
    assert job.usage == {"request_id": request_id, "inference_seconds": 0.42, "seed": 1234}
    assert wallet_get(user=alice).balance_micro == 9_950_000
    assert ProviderAccount.objects.get(slug="fal").last_success_at is not None


@pytest.mark.django_db
def test_it_sends_our_own_image_inline_and_keeps_the_seedance_video(alice, fal_account, fal_fake, polls, own_output):
    picture = png_bytes(40, 30)
    video = mp4_bytes(1.0)

    def seedance(fake, input):
        url = fake.serve_file("clip.mp4", video, "video/mp4")
        return {"video": {"url": url, "content_type": "video/mp4", "file_size": len(video)}, "seed": 5}

    fal_fake.outputs["bytedance/seedance-2.0/fast/image-to-video"] = seedance
    job = _finish(_job(alice, "kiwiwhale/seedance-2.0-fast", prompt="it swims", image_url=own_output(picture, "a.png")))

    [submit] = fal_fake.seen("POST")
    assert submit.path == "/bytedance/seedance-2.0/fast/image-to-video"
    sent = submit.json
    # The upstream cannot reach this instance: its own output goes inline, as a data: URI fal accepts.
    assert sent["image_url"].startswith("data:image/png;base64,")
    assert base64.b64decode(sent["image_url"].split(",", 1)[1]) == picture
    assert {k: v for k, v in sent.items() if k != "image_url"} == {
        "prompt": "it swims",
        "duration": "5",
        "resolution": "720p",
    }
    assert fal_fake.seen("GET")[0].path.startswith("/bytedance/seedance-2.0/requests/")
    assert job.status == "completed"
    output = job.outputs.get()
    assert (output.type, output.content_type, output.width, output.height) == ("video", "video/mp4", 64, 48)
    assert output.duration_seconds == pytest.approx(1.0, abs=0.15)
    with output.file.open("rb") as stored:
        assert stored.read() == video
    assert wallet_get(user=alice).balance_micro == 10_000_000 - 1_125_000


@pytest.mark.django_db
def test_it_speaks_through_the_fal_tts_route_with_our_voice_names(alice, fal_account, fal_fake, polls):
    speech = wav_bytes(1.0)

    def kokoro(fake, input):
        return {"audio": {"url": fake.serve_file("speech.wav", speech, "audio/wav"), "content_type": "audio/wav"}}

    fal_fake.outputs["fal-ai/kokoro/american-english"] = kokoro
    job = _finish(_job(alice, "kiwiwhale/s2-pro/tts", text="Hello from the whale."))

    [submit] = fal_fake.seen("POST")
    assert submit.path == "/fal-ai/kokoro/american-english"
    assert submit.json == {"prompt": "Hello from the whale.", "voice": "af_alloy"}
    assert fal_fake.seen("GET")[0].path.startswith("/fal-ai/kokoro/requests/")
    output = job.outputs.get()
    assert (output.type, output.content_type) == ("audio", "audio/wav") and output.file_name.endswith(".wav")
    assert output.duration_seconds == pytest.approx(1.0, abs=0.01)
    with output.file.open("rb") as stored:
        assert stored.read() == speech
    # A voice the route does not translate goes as it is (a Kokoro voice id).
    route = ModelRoute.objects.get(model__public_model="kiwiwhale/s2-pro/tts", provider="fal")
    assert upstream_input({"text": "hi", "voice": "af_bella"}, route.params) == {"prompt": "hi", "voice": "af_bella"}


def test_it_sends_public_media_urls_as_they_are():
    sent = upstream_input({"prompt": "p", "image_url": "https://example.com/cat.png"}, {})
    assert sent == {"prompt": "p", "image_url": "https://example.com/cat.png"}


def test_it_reads_the_image_size_when_fal_does_not_give_it(fal_fake):
    def two_images(fake, input):
        return {
            "images": [
                {"url": fake.serve_file("a.png", png_bytes(30, 20), "application/octet-stream")},
                {"url": fake.serve_file("b.jpeg", png_bytes(12, 34), "image/png"), "content_type": "image/png"},
            ]
        }

    fal_fake.outputs[Z_IMAGE] = two_images
    result = _run_to_end(_fal(fal_fake), input={"prompt": "p", "num_images": 2})
    assert isinstance(result, RunResult)
    assert [(o.type, o.content_type, o.width, o.height) for o in result.outputs] == [
        ("image", "image/png", 30, 20),
        ("image", "image/png", 12, 34),
    ]
    assert [o.file_name for o in result.outputs] == ["a.png", "b.png"]


def test_it_returns_text_and_json_answers_without_files(fal_fake):
    fal_fake.outputs["fal-ai/any-llm"] = lambda fake, input: {"output": "Hi there", "partial": False}
    fal_fake.outputs["fal-ai/nsfw-filter"] = lambda fake, input: {"nsfw_probability": 0.01}
    [text] = _run_to_end(_fal(fal_fake), upstream_model="fal-ai/any-llm").outputs
    assert (text.type, text.text) == ("text", "Hi there")
    [data] = _run_to_end(_fal(fal_fake), upstream_model="fal-ai/nsfw-filter").outputs
    assert (data.type, data.data) == ("json", {"nsfw_probability": 0.01})


def test_it_refuses_a_file_type_a_browser_would_run(fal_fake):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    fal_fake.outputs[Z_IMAGE] = lambda fake, input: {
        "image": {"url": fake.serve_file("x.svg", svg, "image/svg+xml"), "content_type": "image/svg+xml"}
    }
    with pytest.raises(ProviderError) as info:
        _run_to_end(_fal(fal_fake))
    assert "image/svg+xml" in info.value.message and not info.value.retryable


def test_it_follows_only_urls_on_the_queues_origin(fal_fake):
    fal_fake.submit_urls_on = "http://203.0.113.9:8080"  # a status URL elsewhere would receive our key
    pending = _fal(fal_fake).run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    request_id = pending.upstream_id
    base = f"{fal_fake.url}/fal-ai/z-image/requests/{request_id}"
    assert pending.state == {
        "request_id": request_id,
        "status_url": f"{base}/status",
        "response_url": base,
        "cancel_url": f"{base}/cancel",
    }
    assert isinstance(_run_to_end(_fal(fal_fake)), RunResult)


# --- Cancel -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cancelling_a_waiting_job_reaches_fal(alice, fal_account, fal_fake, polls):
    job = _job(alice, "z-image", prompt="a whale")
    job_run(job_id=job.pk)
    assert job_cancel(job=Job.objects.get(pk=job.pk))
    [request_id] = fal_fake.jobs
    [cancel] = fal_fake.seen("PUT")
    assert cancel.path == f"/fal-ai/z-image/requests/{request_id}/cancel"
    assert cancel.headers["authorization"] == "Key fal-test-key"
    assert fal_fake.jobs[request_id]["canceled"]
    assert Job.objects.get(pk=job.pk).status == "canceled"
    assert wallet_get(user=alice).balance_micro == 10_000_000 and _refunds(alice) == 1


def test_cancelling_a_finished_request_is_harmless(fal_fake):
    provider = _fal(fal_fake)
    pending = provider.run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    for _ in range(3):
        outcome = provider.poll(upstream_model=Z_IMAGE, params={}, input={}, state=pending.state)
    assert isinstance(outcome, RunResult)
    provider.cancel(upstream_model=Z_IMAGE, params={}, state=pending.state)  # 400 ALREADY_COMPLETED: swallowed
    [cancel] = fal_fake.seen("PUT")
    assert cancel.path == f"/fal-ai/z-image/requests/{pending.upstream_id}/cancel"


# --- Errors -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_rejected_key_fails_the_job_at_once_and_marks_the_account(alice, catalog, fal_fake, polls):
    account_connect("fal", base_url=fal_fake.url, api_key="not-the-key")
    job = _finish(_job(alice, "z-image", prompt="a whale"))
    assert (job.status, job.error_code) == ("failed", "upstream_auth")
    assert len(fal_fake.seen("POST")) == 1  # not retried
    account = ProviderAccount.objects.get(slug="fal")
    assert "credentials" in account.last_error and not account.healthy
    assert "not-the-key" not in job.error_message + account.last_error
    assert wallet_get(user=alice).balance_micro == 10_000_000 and _refunds(alice) == 1


def test_it_waits_as_long_as_retry_after_says_then_retries(fal_fake, monkeypatch):
    waits = []
    monkeypatch.setattr("apps.generations.providers.http.time.sleep", waits.append)
    fal_fake.script("POST", answer(429, {"detail": "Too many concurrent requests"}, {"Retry-After": "2"}))
    pending = _fal(fal_fake).run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    assert isinstance(pending, Pending) and pending.upstream_id in fal_fake.jobs
    assert len(fal_fake.seen("POST")) == 2 and waits == [2.0]


def test_it_rides_out_a_5xx_while_polling(fal_fake):
    provider = _fal(fal_fake)
    pending = provider.run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    fal_fake.script("GET", answer(502, b"<html>Bad gateway</html>"))
    again = provider.poll(upstream_model=Z_IMAGE, params={}, input={}, state=pending.state)
    assert isinstance(again, Pending) and again.state["status"] == "IN_QUEUE"
    assert len(fal_fake.seen("GET")) == 2


@pytest.mark.django_db
def test_a_failing_queue_fails_the_job_as_retryable_and_refunds_it(alice, fal_account, fal_fake, polls):
    fal_fake.script("POST", *[answer(503, {"detail": "Service unavailable"})] * 3)
    job = _finish(_job(alice, "z-image", prompt="a whale"))
    assert (job.status, job.error_code) == ("failed", "upstream_error")
    assert len(fal_fake.seen("POST")) == 3  # the first try and UPSTREAM_RETRIES more
    assert wallet_get(user=alice).balance_micro == 10_000_000 and _refunds(alice) == 1


def test_a_submit_answered_too_late_is_not_sent_again(fal_fake, settings):
    settings.UPSTREAM_TIMEOUT_SECONDS = 0.3
    settings.UPSTREAM_RETRIES = 2
    fal_fake.delays["POST"] = 5  # fal queues the request, then the answer is late
    with pytest.raises(ProviderError) as info:
        _fal(fal_fake).run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    assert (info.value.code, info.value.retryable) == ("upstream_unknown_outcome", False)
    assert len(fal_fake.seen("POST")) == 1 and len(fal_fake.jobs) == 1  # one upstream job, not three


def test_a_status_read_that_times_out_is_read_again_then_retryable(fal_fake, settings):
    pending = _fal(fal_fake).run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    settings.UPSTREAM_TIMEOUT_SECONDS = 0.2
    settings.UPSTREAM_RETRIES = 2
    fal_fake.delays["GET"] = 1
    with pytest.raises(ProviderError) as info:
        _fal(fal_fake).poll(upstream_model=Z_IMAGE, params={}, input={}, state=pending.state)
    assert (info.value.code, info.value.retryable) == ("upstream_timeout", True)
    assert len(fal_fake.seen("GET")) == 3


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_5xx_other_than_503_on_submit_is_not_sent_again(fal_fake, status):
    fal_fake.script("POST", *[answer(status, {"detail": "Internal error"})] * 3)
    with pytest.raises(ProviderError) as info:
        _fal(fal_fake).run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    assert (info.value.code, info.value.retryable) == ("upstream_unknown_outcome", False)
    assert len(fal_fake.seen("POST")) == 1


@pytest.mark.parametrize(
    "body",
    [b"<html>maintenance</html>", {"status": "IN_QUEUE"}, ["not", "an", "object"]],
    ids=["not-json", "no-request-id", "a-list"],
)
def test_a_malformed_submit_answer_is_a_retryable_error(fal_fake, body):
    fal_fake.script("POST", answer(200, body))
    with pytest.raises(ProviderError) as info:
        _fal(fal_fake).run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    assert (info.value.code, info.value.retryable) == ("upstream_malformed", True)


def test_a_malformed_status_is_a_retryable_error(fal_fake):
    pending = _fal(fal_fake).run(upstream_model=Z_IMAGE, params={}, input={"prompt": "p"})
    fal_fake.script("GET", answer(200, {"queue_position": 3}))
    with pytest.raises(ProviderError) as info:
        _fal(fal_fake).poll(upstream_model=Z_IMAGE, params={}, input={}, state=pending.state)
    assert (info.value.code, info.value.retryable) == ("upstream_malformed", True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "model_error",
    [
        (422, {"detail": [{"loc": ["body", "prompt"], "msg": "The prompt was flagged by the content checker"}]}),
        (500, {"detail": "The prompt was flagged by the content checker", "error_type": "internal_server_error"}),
    ],
    ids=["validation-error", "runner-error"],
)
def test_a_model_error_fails_the_job_with_fals_message(alice, fal_account, fal_fake, polls, model_error):
    fal_fake.model_error = model_error
    job = _finish(_job(alice, "z-image", prompt="a whale"))
    assert (job.status, job.error_code) == ("failed", "upstream_failed")
    assert job.error_message == "fal.ai: the model failed: The prompt was flagged by the content checker"
    assert wallet_get(user=alice).balance_micro == 10_000_000 and _refunds(alice) == 1
