"""The Replicate adapter against a fake Replicate API: what we send, the prediction flow, outputs, errors."""

import pytest

from apps.billing.models import LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
from apps.generations.models import Job
from apps.generations.providers import Pending, ProviderConfig, ProviderError, RunResult
from apps.generations.providers.replicate import ReplicateProvider
from apps.generations.services import job_cancel, job_create, job_poll, job_run
from tests.providers.conftest import account_connect
from tests.providers.fakes import DroppingProxy, answer, png_bytes, wav_bytes

MODEL = "acme/painter"


def _replicate(fake) -> ReplicateProvider:
    return ReplicateProvider(ProviderConfig(slug="replicate", api_key=fake.key, base_url=f"{fake.url}/v1"))


def _run_to_end(provider, *, upstream_model=MODEL, params=None, input=None):
    params, input = params or {}, input or {"prompt": "a whale"}
    outcome = provider.run(upstream_model=upstream_model, params=params, input=input)
    for _ in range(5):
        if not isinstance(outcome, Pending):
            return outcome
        outcome = provider.poll(upstream_model=upstream_model, params=params, input=input, state=outcome.state)
    raise AssertionError("the fake never finished")


def _z_image_job(user, **input) -> Job:
    return job_create(
        user=user, model=AIModel.objects.get(public_model="z-image"), input={"prompt": "a whale", **input}
    )


def _refunds(user) -> int:
    return LedgerEntry.objects.filter(wallet__user=user, kind=LedgerEntry.Kind.REFUND).count()


# --- Through the services: the z-image route on Replicate -----------------------------------------------


@pytest.mark.django_db
def test_it_runs_z_image_on_replicate_and_keeps_the_image(alice, alice_api, replicate_account, replicate_fake, polls):
    job = _z_image_job(alice, image_size="portrait_4_3", seed=9)
    job_run(job_id=job.pk)
    job.refresh_from_db()

    [create] = replicate_fake.seen("POST")
    assert create.path == "/v1/models/prunaai/z-image-turbo/predictions"
    assert create.headers["authorization"] == "Bearer r8_test_token"
    assert create.headers["prefer"] == "wait=10"  # a fast model: the answer waits for the image
    assert create.json == {
        "input": {"prompt": "a whale", "seed": 9, "width": 768, "height": 1024, "output_format": "png"}
    }
    assert job.status == "completed" and polls == []
    output = job.outputs.get()
    content = replicate_fake.files["out-0.png"][0]
    assert (output.type, output.content_type, output.width, output.height) == ("image", "image/png", 768, 1024)
    with output.file.open("rb") as stored:
        assert stored.read() == content
    url = alice_api.get("/api/v1/jobs.php", {"job_id": job.pk}).json()["outputs"][0]["url"]
    assert url.startswith("http://testserver/media/outputs/") and replicate_fake.url not in url
    [prediction_id] = replicate_fake.predictions
    assert job.usage == {"prediction_id": prediction_id, "predict_time": 1.25}
    assert job.provider == "replicate" and wallet_get(user=alice).balance_micro == 9_950_000


@pytest.mark.django_db
def test_a_failed_prediction_fails_the_job_with_its_error_and_refunds_it(
    alice, replicate_account, replicate_fake, polls
):
    replicate_fake.fail_with = 'Traceback (most recent call last):\n  File "predict.py"\nRuntimeError: CUDA OOM'
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "upstream_failed")
    assert job.error_message == (
        'Replicate: the model failed: Traceback (most recent call last): File "predict.py" RuntimeError: CUDA OOM'
    )
    assert wallet_get(user=alice).balance_micro == 10_000_000 and _refunds(alice) == 1


@pytest.mark.django_db
def test_cancelling_a_waiting_job_reaches_replicate(alice, replicate_account, replicate_fake, polls):
    route = ModelRoute.objects.get(model__public_model="z-image", provider="replicate")
    route.params = {k: v for k, v in route.params.items() if k != "wait_seconds"}
    route.save()
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    [prediction_id] = replicate_fake.predictions
    assert (job.status, job.upstream_id, polls) == ("processing", prediction_id, [job.pk])
    assert "prefer" not in replicate_fake.seen("POST")[0].headers

    assert job_cancel(job=job)
    cancel = replicate_fake.seen("POST")[-1]
    assert cancel.path == f"/v1/predictions/{prediction_id}/cancel"
    assert cancel.headers["authorization"] == "Bearer r8_test_token"
    assert replicate_fake.predictions[prediction_id]["status"] == "canceled"
    assert wallet_get(user=alice).balance_micro == 10_000_000 and _refunds(alice) == 1
    job_poll(job_id=job.pk)  # a late poll changes nothing
    assert Job.objects.get(pk=job.pk).status == "canceled"


@pytest.mark.django_db
def test_a_rejected_token_fails_the_job_at_once_and_marks_the_account(alice, catalog, replicate_fake, polls):
    account_connect("replicate", base_url=f"{replicate_fake.url}/v1", api_key="r8_wrong")
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.error_code) == ("failed", "upstream_auth")
    assert len(replicate_fake.seen("POST")) == 1
    account = ProviderAccount.objects.get(slug="replicate")
    assert "credentials" in account.last_error and not account.healthy
    assert wallet_get(user=alice).balance_micro == 10_000_000 and _refunds(alice) == 1


# --- The protocol, against the adapter ------------------------------------------------------------------


def test_it_creates_then_follows_a_prediction_to_its_end(replicate_fake):
    provider = _replicate(replicate_fake)
    pending = provider.run(upstream_model=MODEL, params={}, input={"prompt": "a whale", "width": 20, "height": 10})
    [prediction_id] = replicate_fake.predictions
    base = f"{replicate_fake.url}/v1/predictions/{prediction_id}"
    assert isinstance(pending, Pending) and pending.upstream_id == prediction_id
    assert pending.state == {"id": prediction_id, "get_url": base, "cancel_url": f"{base}/cancel"}
    [create] = replicate_fake.seen("POST")
    assert create.path == "/v1/models/acme/painter/predictions"
    assert create.json == {"input": {"prompt": "a whale", "width": 20, "height": 10}}

    processing = provider.poll(upstream_model=MODEL, params={}, input={}, state=pending.state)
    assert isinstance(processing, Pending)
    result = provider.poll(upstream_model=MODEL, params={}, input={}, state=processing.state)
    assert isinstance(result, RunResult)
    assert [r.path for r in replicate_fake.seen("GET") if not r.path.startswith("/files/")] == [
        f"/v1/predictions/{prediction_id}"
    ] * 2
    [output] = result.outputs
    assert (output.type, output.width, output.height) == ("image", 20, 10)
    assert output.content == replicate_fake.files["out-0.png"][0]
    assert "authorization" not in replicate_fake.seen("GET", "/files/out-0.png")[0].headers


def test_a_version_runs_through_the_predictions_endpoint(replicate_fake):
    version = "5fd5416a46178ec2eb14ba9e3418c5c5410f85f34494b3618f29c953041e074b"
    _run_to_end(_replicate(replicate_fake), upstream_model=f"prunaai/z-image-turbo:{version}")
    [create] = replicate_fake.seen("POST")
    assert create.path == "/v1/predictions"
    assert create.json == {"version": version, "input": {"prompt": "a whale"}}


def test_it_joins_the_tokens_of_a_text_model(replicate_fake):
    replicate_fake.outputs["meta/llama"] = lambda fake, input: ["Hel", "lo", ", whale", "!"]
    [output] = _run_to_end(_replicate(replicate_fake), upstream_model="meta/llama").outputs
    assert (output.type, output.text) == ("text", "Hello, whale!")


def test_it_keeps_every_file_of_a_list_and_of_an_object(replicate_fake):
    def files(fake, input):
        return [
            fake.serve_file("a.png", png_bytes(8, 8), "image/png"),
            fake.serve_file("b.wav", wav_bytes(0.5), "audio/wav"),
        ]

    replicate_fake.outputs["acme/two"] = files
    replicate_fake.outputs["acme/object"] = lambda fake, input: {
        "audio": fake.serve_file("c.wav", wav_bytes(0.25), "audio/wav"),
        "text": "transcript",
    }
    two = _run_to_end(_replicate(replicate_fake), upstream_model="acme/two").outputs
    assert [(o.type, o.content_type) for o in two] == [("image", "image/png"), ("audio", "audio/wav")]
    assert two[1].duration_seconds == pytest.approx(0.5, abs=0.01)
    [audio] = _run_to_end(_replicate(replicate_fake), upstream_model="acme/object").outputs
    assert audio.type == "audio" and audio.content == replicate_fake.files["c.wav"][0]


def test_an_object_without_files_is_kept_as_json(replicate_fake):
    replicate_fake.outputs["acme/classifier"] = lambda fake, input: {"label": "whale", "score": 0.98}
    [output] = _run_to_end(_replicate(replicate_fake), upstream_model="acme/classifier").outputs
    assert (output.type, output.data) == ("json", {"label": "whale", "score": 0.98})


def test_a_prediction_canceled_upstream_is_an_error_of_its_own(replicate_fake):
    replicate_fake.cancel_on_its_own = True
    with pytest.raises(ProviderError) as info:
        _run_to_end(_replicate(replicate_fake))
    assert (info.value.code, info.value.retryable) == ("upstream_canceled", False)


def test_a_route_limit_lets_another_route_serve_larger_inputs():
    from apps.generations.providers.hosted import upstream_input

    with pytest.raises(ProviderError) as info:
        upstream_input({"prompt": "p", "num_images": 2}, {"max": {"num_images": 1}})
    assert (info.value.code, info.value.retryable) == ("route_unsuitable", True)


def test_it_waits_as_long_as_retry_after_says_then_retries(replicate_fake, monkeypatch):
    waits = []
    monkeypatch.setattr("apps.generations.providers.http.time.sleep", waits.append)
    replicate_fake.script(
        "POST", answer(429, {"title": "Too Many Requests", "detail": "Throttled", "status": 429}, {"Retry-After": "3"})
    )
    assert isinstance(_replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"p": 1}), Pending)
    assert len(replicate_fake.seen("POST")) == 2 and waits == [3.0]


def test_an_unavailable_api_is_retried_then_a_retryable_error(replicate_fake):
    replicate_fake.script("POST", *[answer(503, {"detail": "Service Unavailable"})] * 3)
    with pytest.raises(ProviderError) as info:
        _replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"p": 1})
    assert (info.value.code, info.value.retryable) == ("upstream_error", True)
    assert len(replicate_fake.seen("POST")) == 3


def test_a_500_on_create_is_looked_up_not_sent_again(replicate_fake):
    replicate_fake.script("POST", *[answer(500, {"detail": "Internal Server Error"})] * 3)
    with pytest.raises(ProviderError) as info:
        _replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"p": 1})
    assert (info.value.code, info.value.retryable) == ("upstream_unknown_outcome", False)
    assert len(replicate_fake.seen("POST")) == 1
    assert len(replicate_fake.seen("GET", "/v1/predictions")) == 1  # nothing of ours there: fail, do not resend


def test_a_create_answered_too_late_adopts_the_prediction_replicate_made(replicate_fake, settings):
    settings.UPSTREAM_TIMEOUT_SECONDS = 0.3
    settings.UPSTREAM_RETRIES = 2
    replicate_fake.delays["POST"] = 5  # the prediction is created, the answer is late
    pending = _replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"prompt": "a whale"})
    [prediction_id] = replicate_fake.predictions
    assert isinstance(pending, Pending) and pending.upstream_id == prediction_id
    assert len(replicate_fake.seen("POST")) == 1
    replicate_fake.delays.clear()
    provider = _replicate(replicate_fake)
    outcome = provider.poll(upstream_model=MODEL, params={}, input={}, state=pending.state)
    outcome = provider.poll(upstream_model=MODEL, params={}, input={}, state=outcome.state)
    assert isinstance(outcome, RunResult)


def test_a_lost_create_that_matches_several_predictions_is_not_guessed(replicate_fake, settings):
    _replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"prompt": "same"})  # another job's
    settings.UPSTREAM_TIMEOUT_SECONDS = 0.3
    replicate_fake.delays["POST"] = 5
    with pytest.raises(ProviderError) as info:
        _replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"prompt": "same"})
    assert info.value.code == "upstream_unknown_outcome"
    assert len(replicate_fake.predictions) == 2 and len(replicate_fake.seen("POST")) == 2


@pytest.mark.django_db
def test_a_slow_z_image_job_is_paid_upstream_once(alice, replicate_account, replicate_fake, polls, settings):
    settings.UPSTREAM_TIMEOUT_SECONDS = 0.5
    replicate_fake.delays["POST"] = 3  # with Prefer: wait the prediction is finished before the (late) answer
    job = _z_image_job(alice)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "completed" and len(replicate_fake.predictions) == 1
    assert len(replicate_fake.seen("POST")) == 1
    assert wallet_get(user=alice).balance_micro == 9_950_000


def test_an_invalid_input_is_refused_with_replicates_reason(replicate_fake):
    replicate_fake.script("POST", answer(422, {"title": "Input validation failed", "detail": "width: Must be <= 1440"}))
    with pytest.raises(ProviderError) as info:
        _replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"width": 4000})
    assert (info.value.code, info.value.retryable) == ("upstream_rejected", False)
    assert info.value.message.endswith("width: Must be <= 1440")


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        {"status": "starting"},
        {"id": "x", "status": "exploded"},
        {"id": "x", "status": "succeeded"},
    ],
    ids=["not-json", "no-id", "unknown-status", "no-output"],
)
def test_a_malformed_prediction_is_a_retryable_error(replicate_fake, body):
    replicate_fake.script("POST", answer(201, body))
    with pytest.raises(ProviderError) as info:
        _replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"p": 1})
    assert (info.value.code, info.value.retryable) == ("upstream_malformed", True)


@pytest.mark.django_db
def test_a_create_whose_answer_a_proxy_drops_is_adopted_not_sent_again(alice, catalog, replicate_fake, polls):
    # A real proxy between us and Replicate cuts the connection after Replicate created the prediction.
    proxy = DroppingProxy(replicate_fake.url, drop=lambda method, path: method == "POST").start()
    try:
        account_connect("replicate", base_url=f"{proxy.url}/v1", api_key=replicate_fake.key)
        job = _z_image_job(alice)
        job_run(job_id=job.pk)
        job.refresh_from_db()
    finally:
        proxy.stop()
    assert proxy.dropped == [("POST", "/v1/models/prunaai/z-image-turbo/predictions")]
    assert len(replicate_fake.seen("POST")) == 1 and len(replicate_fake.predictions) == 1
    assert job.status == "completed", job.error_message
    assert wallet_get(user=alice).balance_micro == 9_950_000 and _refunds(alice) == 0


def test_a_read_whose_answer_a_proxy_drops_is_read_again(replicate_fake):
    pending = _replicate(replicate_fake).run(upstream_model=MODEL, params={}, input={"prompt": "p"})
    drops = iter([True, False])
    proxy = DroppingProxy(replicate_fake.url, drop=lambda method, path: method == "GET" and next(drops, False)).start()
    try:
        provider = ReplicateProvider(
            ProviderConfig(slug="replicate", api_key=replicate_fake.key, base_url=f"{proxy.url}/v1")
        )
        state = {**pending.state, "get_url": pending.state["get_url"].replace(replicate_fake.url, proxy.url)}
        # Each read steps the fake's prediction (starting → processing → succeeded): the lost one counted too.
        assert isinstance(provider.poll(upstream_model=MODEL, params={}, input={}, state=state), RunResult)
    finally:
        proxy.stop()
    assert len(proxy.dropped) == 1 and len(replicate_fake.seen("GET", f"/v1/predictions/{pending.upstream_id}")) == 2
