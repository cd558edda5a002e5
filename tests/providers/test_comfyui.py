"""The ComfyUI adapter against a local fake ComfyUI server: submit a bound workflow, poll its history, cancel."""

import copy

import pytest
from django.core.files.storage import default_storage
from PIL import Image

from apps.billing.models import Hold, LedgerEntry
from apps.billing.services import wallet_get
from apps.catalog.models import AIModel, ProviderAccount
from apps.catalog.services import provider_account_save
from apps.generations.models import Job
from apps.generations.providers import Pending, ProviderConfig, ProviderError, RunResult
from apps.generations.providers.comfyui import ComfyUIProvider
from apps.generations.services import job_cancel, job_create, job_poll, job_run
from tests.providers.fake_comfyui import DEFAULT_WORKFLOW, HANG, HANG_AFTER, FakeComfyUI

pytestmark = pytest.mark.django_db

BIND = {
    "prompt": ["6", "text"],
    "negative_prompt": ["7", "text"],
    "width": ["5", "width"],
    "height": ["5", "height"],
    "seed": ["3", "seed"],
    "steps": ["3", "steps"],
}
PARAMS = {"workflow": "text-to-image", "bind": BIND}


@pytest.fixture
def comfy_fake(settings):
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    settings.UPSTREAM_RETRIES = 2
    server = FakeComfyUI().start_server()
    yield server
    server.stop()


@pytest.fixture
def comfy_connected(catalog, comfy_fake):
    """The seeded `comfyui` account as an admin sets it up: base URL, the exported workflow, enabled."""
    account = ProviderAccount.objects.get(slug="comfyui")
    account.enabled = True
    account.base_url = comfy_fake.base_url
    account.options = {"workflows": {"text-to-image": DEFAULT_WORKFLOW}}
    return provider_account_save(account=account)


@pytest.fixture
def poll_queue(monkeypatch):
    """The job ids whose poll the services enqueued; the tests call job_poll themselves."""
    enqueued = []
    monkeypatch.setattr(
        "apps.generations.services.job_poll_enqueue", lambda *, job_id, delay=0: enqueued.append(job_id)
    )
    return enqueued


def adapter(fake: FakeComfyUI, *, api_key: str = "", workflows=None, **options) -> ComfyUIProvider:
    options = {"workflows": {"text-to-image": DEFAULT_WORKFLOW} if workflows is None else workflows, **options}
    return ComfyUIProvider(ProviderConfig(slug="comfyui", api_key=api_key, base_url=fake.base_url, options=options))


def submit(user, input: dict) -> Job:
    job = job_create(user=user, model=AIModel.objects.get(public_model="comfyui/text-to-image"), input=input)
    job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def poll(job: Job) -> Job:
    job_poll(job_id=job.pk)
    job.refresh_from_db()
    return job


def test_it_runs_a_workflow_job_from_submission_to_stored_image(alice, comfy_connected, comfy_fake, poll_queue):
    job = submit(
        alice,
        {"prompt": "a kiwi bird", "negative_prompt": "blurry", "width": 640, "height": 384, "seed": 42, "steps": 12},
    )
    assert job.status == "processing" and poll_queue == [job.pk]
    (sent,) = comfy_fake.calls("POST", "/prompt")
    prompt_id = job.upstream_id
    assert prompt_id in comfy_fake.prompts and job.upstream_state["prompt_id"] == prompt_id
    assert sent.json["client_id"] == comfy_fake.prompts[prompt_id]["client_id"] != ""
    expected = copy.deepcopy(DEFAULT_WORKFLOW)
    expected["6"]["inputs"]["text"], expected["7"]["inputs"]["text"] = "a kiwi bird", "blurry"
    expected["5"]["inputs"].update(width=640, height=384)
    expected["3"]["inputs"].update(seed=42, steps=12)
    assert sent.json["prompt"] == expected  # bound where the route says, the rest of the workflow untouched
    assert "authorization" not in sent.headers

    assert poll(job).status == "processing"  # queued: the history is still empty
    comfy_fake.start(prompt_id)
    assert poll(job).status == "processing"  # running
    comfy_fake.finish(prompt_id)
    job = poll(job)
    assert job.status == "completed", job.error_message
    (view,) = comfy_fake.calls("GET", "/view")
    assert view.query == {"filename": "ComfyUI_00001_.png", "subfolder": "", "type": "output"}
    output = job.outputs.get()
    assert (output.type, output.content_type, output.width, output.height) == ("image", "image/png", 640, 384)
    assert output.file_size == default_storage.size(output.file.name) > 0
    with default_storage.open(output.file.name) as handle, Image.open(handle) as image:
        assert image.size == (640, 384)
    assert job.usage == {"files": 1, "seed": 42}
    assert wallet_get(user=alice).balance_micro == 9_980_000
    assert Hold.objects.get(pk=job.hold_id).status == Hold.Status.SETTLED
    assert list(LedgerEntry.objects.filter(reference=job.pk).values_list("kind", flat=True)) == ["debit"]
    job_poll(job_id=job.pk)  # a late duplicate poll does nothing
    assert job.outputs.count() == 1 and len(comfy_fake.calls("GET", "/view")) == 1


def test_the_model_is_listed_only_while_a_comfyui_account_is_enabled(catalog, comfy_fake, anon_api):
    def listed():
        return {m["public_model"] for m in anon_api.get("/api/v1/models.php").json()["models"]}

    assert "comfyui/text-to-image" not in listed()
    account = ProviderAccount.objects.get(slug="comfyui")
    account.enabled, account.base_url = True, comfy_fake.base_url
    account.options = {"workflows": {"text-to-image": DEFAULT_WORKFLOW}}
    provider_account_save(account=account)  # no key: a self-hosted ComfyUI needs none
    assert "comfyui/text-to-image" in listed()


def test_a_job_without_a_seed_gets_a_random_one_and_records_it(comfy_fake):
    provider = adapter(comfy_fake)
    pending = provider.run(upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"})
    seed = comfy_fake.requests[-1].json["prompt"]["3"]["inputs"]["seed"]
    assert isinstance(seed, int) and seed != DEFAULT_WORKFLOW["3"]["inputs"]["seed"] and pending.state["seed"] == seed
    comfy_fake.finish(pending.upstream_id)
    result = provider.poll(upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"}, state=pending.state)
    assert result.usage["seed"] == seed


def test_a_route_may_name_its_workflow_by_upstream_model_and_set_the_poll_interval(comfy_fake):
    pending = adapter(comfy_fake, poll_seconds=3).run(
        upstream_model="text-to-image", params={"bind": {"prompt": ["6", "text"]}}, input={"prompt": "p"}
    )
    assert isinstance(pending, Pending) and pending.retry_after == 3.0
    assert comfy_fake.requests[-1].json["prompt"]["6"]["inputs"]["text"] == "p"


@pytest.mark.parametrize(
    ("workflow", "message"),
    [
        ({**DEFAULT_WORKFLOW, "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "gone.ckpt"}}},
         "Prompt outputs failed validation"),
        ({**DEFAULT_WORKFLOW, "10": {"class_type": "UpscaleWithMagic", "inputs": {}}},
         "node UpscaleWithMagic does not exist"),
        ({k: v for k, v in DEFAULT_WORKFLOW.items() if k != "9"}, "Prompt has no outputs"),
    ],
)  # fmt: skip
def test_an_invalid_workflow_fails_the_job_at_once_and_refunds_it(
    alice, comfy_connected, comfy_fake, poll_queue, workflow, message
):
    comfy_connected.options = {"workflows": {"text-to-image": workflow}}
    provider_account_save(account=comfy_connected)
    job = submit(alice, {"prompt": "x"})
    assert job.status == "failed" and job.error_code == "upstream_rejected"
    assert message in job.error_message and "HTTP 400" in job.error_message
    assert len(comfy_fake.calls("POST", "/prompt")) == 1  # not retried
    assert poll_queue == []
    assert wallet_get(user=alice).balance_micro == 10_000_000
    assert ProviderAccount.objects.get(slug="comfyui").last_error == job.error_message


def test_an_execution_error_in_the_history_fails_the_job_and_refunds_it(alice, comfy_connected, comfy_fake, poll_queue):
    job = submit(alice, {"prompt": "x", "width": 2048, "height": 2048})
    comfy_fake.start(job.upstream_id)
    comfy_fake.fail(job.upstream_id, node_id="3", message="Allocation on device 0 would exceed allowed memory.")
    job = poll(job)
    assert job.status == "failed" and job.error_code == "upstream_execution_error"
    assert job.error_message == (
        "ComfyUI failed at node 3 (KSampler): Allocation on device 0 would exceed allowed memory."
    )
    assert wallet_get(user=alice).balance_micro == 10_000_000
    assert Hold.objects.get(pk=job.hold_id).status == Hold.Status.RELEASED


def test_cancelling_a_queued_job_deletes_it_from_the_comfyui_queue(alice, comfy_connected, comfy_fake, poll_queue):
    job = submit(alice, {"prompt": "x"})
    assert job_cancel(job=job) is True
    (delete,) = comfy_fake.calls("POST", "/queue")
    assert delete.json == {"delete": [job.upstream_id]}
    assert comfy_fake.deleted == [job.upstream_id] and comfy_fake.calls("POST", "/interrupt") == []
    assert Job.objects.get(pk=job.pk).status == "canceled"
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_cancelling_a_running_job_interrupts_comfyui(alice, comfy_connected, comfy_fake, poll_queue):
    job = submit(alice, {"prompt": "x"})
    comfy_fake.start(job.upstream_id)
    assert job_cancel(job=job) is True
    (interrupt,) = comfy_fake.calls("POST", "/interrupt")
    assert interrupt.json == {"prompt_id": job.upstream_id}
    assert comfy_fake.interrupted == [job.upstream_id] and comfy_fake.calls("POST", "/queue") == []
    job_poll(job_id=job.pk)  # a poll already enqueued finds the job cancelled and does nothing
    assert Job.objects.get(pk=job.pk).status == "canceled"
    assert wallet_get(user=alice).balance_micro == 10_000_000


def test_transient_poll_failures_are_ridden_out(alice, comfy_connected, comfy_fake, poll_queue):
    job = submit(alice, {"prompt": "x"})
    comfy_fake.script = [(502, {}, b"Bad Gateway")] * 3  # one poll: the first try and two retries
    job = poll(job)
    assert job.status == "processing" and job.upstream_state["poll_errors"] == 1
    comfy_fake.finish(job.upstream_id)
    assert poll(job).status == "completed"


@pytest.mark.parametrize("answer", [(200, {}, b"<html>proxy error</html>"), (200, {}, [1, 2, 3])])
def test_a_malformed_history_is_a_retryable_error(comfy_fake, answer):
    provider = adapter(comfy_fake)
    pending = provider.run(upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"})
    comfy_fake.script = [answer]
    with pytest.raises(ProviderError) as info:
        provider.poll(upstream_model="text-to-image", params=PARAMS, input={}, state=pending.state)
    assert (info.value.code, info.value.retryable) == ("upstream_malformed", True)


def test_a_prompt_comfyui_forgot_is_a_retryable_error(comfy_fake):
    provider = adapter(comfy_fake)
    pending = provider.run(upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"})
    comfy_fake.prompts.clear()  # the server restarted: neither queued nor in the history
    with pytest.raises(ProviderError) as info:
        provider.poll(upstream_model="text-to-image", params=PARAMS, input={}, state=pending.state)
    assert (info.value.code, info.value.retryable) == ("upstream_lost", True)


def test_a_submit_whose_answer_is_lost_is_found_in_the_queue_and_not_sent_twice(
    alice, comfy_connected, comfy_fake, poll_queue
):
    comfy_connected.options = {**comfy_connected.options, "timeout_seconds": 0.5}
    comfy_connected.save()
    comfy_fake.script = [HANG_AFTER]  # ComfyUI queues the prompt; its answer never arrives
    job = submit(alice, {"prompt": "a slow whale"})

    (sent,) = comfy_fake.calls("POST", "/prompt")
    [prompt_id] = comfy_fake.prompts
    assert sent.json["prompt_id"] == prompt_id  # our id, kept by ComfyUI: how the lookup finds it
    assert (job.status, job.upstream_id) == ("processing", prompt_id)
    comfy_fake.finish(prompt_id)
    job = poll(job)
    assert job.status == "completed" and job.outputs.count() == 1
    assert len(comfy_fake.calls("POST", "/prompt")) == 1


def test_a_submit_comfyui_never_got_fails_without_being_sent_again(comfy_fake, settings):
    settings.UPSTREAM_RETRIES = 2
    comfy_fake.script = [HANG]  # not queued, no answer: the lookup finds nothing
    with pytest.raises(ProviderError) as info:
        adapter(comfy_fake, timeout_seconds=0.3).run(
            upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"}
        )
    assert (info.value.code, info.value.retryable) == ("upstream_unknown_outcome", False)
    assert len(comfy_fake.calls("POST", "/prompt")) == 1 and comfy_fake.prompts == {}
    assert len(comfy_fake.calls("GET", "/queue")) == 1  # it looked before deciding


def test_a_history_read_that_times_out_is_read_again(comfy_fake, settings):
    settings.UPSTREAM_RETRIES = 2
    provider = adapter(comfy_fake, timeout_seconds=0.3)
    pending = provider.run(upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"})
    comfy_fake.script = [HANG]  # reads are safe to send again
    comfy_fake.finish(pending.upstream_id)
    result = provider.poll(upstream_model="text-to-image", params=PARAMS, input={}, state=pending.state)
    assert isinstance(result, RunResult)
    assert len(comfy_fake.calls("GET", f"/history/{pending.upstream_id}")) == 2


def test_it_keeps_saved_videos_and_skips_previews(comfy_fake):
    provider = adapter(comfy_fake)
    pending = provider.run(upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"})
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(200)
    comfy_fake.finish_with(
        pending.upstream_id,
        outputs={
            "12": {"gifs": [{"filename": "AnimateDiff_00001.mp4", "subfolder": "clips", "type": "output",
                             "format": "video/h264-mp4", "frame_rate": 8.0}]},
            "13": {"images": [{"filename": "ComfyUI_temp_x_00001_.png", "subfolder": "", "type": "temp"}]},
        },
        files={("output", "clips", "AnimateDiff_00001.mp4"): video},
    )  # fmt: skip
    result = provider.poll(upstream_model="text-to-image", params=PARAMS, input={}, state=pending.state)
    assert isinstance(result, RunResult)
    (output,) = result.outputs
    assert (output.type, output.content_type, output.file_name, output.content) == (
        "video",
        "video/mp4",
        "AnimateDiff_00001.mp4",
        video,
    )
    assert comfy_fake.calls("GET", "/view")[0].query["subfolder"] == "clips"


def test_a_protected_instance_gets_the_bearer_key_and_a_wrong_one_is_final(settings):
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    server = FakeComfyUI(api_key="comfy-secret").start_server()
    try:
        pending = adapter(server, api_key="comfy-secret").run(
            upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"}
        )
        assert server.requests[-1].headers["authorization"] == "Bearer comfy-secret"
        assert pending.upstream_id in server.prompts
        with pytest.raises(ProviderError) as info:
            adapter(server).run(upstream_model="text-to-image", params=PARAMS, input={"prompt": "p"})
        assert (info.value.code, info.value.retryable) == ("upstream_auth", False)
        assert len(server.calls("POST", "/prompt")) == 2  # a 401 is not retried
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("workflows", "params", "message"),
    [
        ({}, PARAMS, "no workflow named 'text-to-image'"),
        ({"text-to-image": {"nodes": [], "links": [], "version": 0.4}}, PARAMS, "UI format"),
        ({"text-to-image": "{not json"}, PARAMS, "not valid JSON"),
        ({"text-to-image": DEFAULT_WORKFLOW}, {"workflow": "text-to-image", "bind": {"prompt": ["99", "text"]}},
         "names node '99'"),
        ({"text-to-image": DEFAULT_WORKFLOW}, {"workflow": "text-to-image", "bind": {"prompt": "6"}},
         "[node id, input name]"),
    ],
)  # fmt: skip
def test_a_misconfigured_workflow_is_refused_before_calling_comfyui(comfy_fake, workflows, params, message):
    with pytest.raises(ProviderError) as info:
        adapter(comfy_fake, workflows=workflows).run(upstream_model="x", params=params, input={"prompt": "p"})
    assert (info.value.code, info.value.retryable) == ("provider_misconfigured", False)
    assert message in info.value.message
    assert comfy_fake.requests == []


def test_a_workflow_pasted_as_text_and_a_binding_to_several_nodes_work(comfy_fake):
    import json

    workflows = {"text-to-image": json.dumps(DEFAULT_WORKFLOW)}
    params = {"workflow": "text-to-image", "bind": {"prompt": [["6", "text"], ["7", "text"]]}}
    adapter(comfy_fake, workflows=workflows).run(upstream_model="x", params=params, input={"prompt": "twice"})
    sent = comfy_fake.requests[-1].json["prompt"]
    assert sent["6"]["inputs"]["text"] == sent["7"]["inputs"]["text"] == "twice"


def test_comfyui_models_stay_hidden_until_the_account_has_a_workflow(catalog, anon_api):
    from apps.catalog.models import ProviderAccount

    def served():
        return {m["public_model"] for m in anon_api.get("/api/v1/models.php").json()["models"]}

    account = ProviderAccount.objects.get(slug="comfyui")
    account.enabled = True
    account.options = {}
    account.save()
    assert "comfyui/text-to-image" not in served()
    account.options = {"workflows": {"default": {"3": {"class_type": "KSampler", "inputs": {}}}}}
    account.save()
    assert "comfyui/text-to-image" in served()
