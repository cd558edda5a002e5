"""The client's one request/response layer, stepped by hand: the HTTP answers are fed to it as a server would send
them, and each step it asks for next is checked (no server needed: the layer does no I/O of its own)."""

import httpx
import pytest
from kiwiwhale_client import APIConnectionError, InsufficientCredits
from kiwiwhale_client._core import Call, Operations, Settings, Sleep

SETTINGS = Settings(base_url="http://kiwi.test", api_key="kw_test", max_retries=3)
QUEUED = {"success": True, "job_id": "job_1", "status": "queued", "poll_url": "http://kiwi.test/api/v1/jobs.php"}


def answer(call: Call, status: int, body: dict, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers, request=httpx.Request(call.method, call.path))


def generate(wait):
    flow = Operations(SETTINGS).generate(
        "local/procedural-image", {"prompt": "a kiwi"}, wait=wait, idempotency_key=None, webhook_url=None,
        webhook_events=None, max_cost_credits=None, cancel_after=None, on_update=None, step_seconds=60,
    )  # fmt: skip
    return flow, next(flow)


def test_it_polls_at_intervals_a_server_that_does_not_hold_requests():
    flow, submit = generate(wait=30)
    assert submit.headers["Prefer"] == "wait=30" and submit.idempotency_key
    poll = flow.send(answer(submit, 202, QUEUED))  # no Preference-Applied: the server ignored Prefer
    assert poll.path == "jobs.php" and poll.params == {"job_id": "job_1", "wait": None}
    pause = flow.send(answer(poll, 200, {**QUEUED, "status": "processing"}))
    assert isinstance(pause, Sleep) and 0 < pause.seconds <= 3
    poll = flow.send(None)
    with pytest.raises(StopIteration) as ended:
        flow.send(answer(poll, 200, {**QUEUED, "status": "completed", "outputs": []}))
    assert ended.value.value["status"] == "completed"


def test_it_holds_each_poll_on_a_server_that_honoured_prefer_wait():
    flow, submit = generate(wait=True)
    poll = flow.send(answer(submit, 202, QUEUED, **{"Preference-Applied": "wait=60"}))
    assert poll.params == {"job_id": "job_1", "wait": 60} and poll.timeout >= 60


def test_it_sends_only_a_keyed_request_again_and_always_with_its_key():
    flow, submit = generate(wait=False)
    pause = flow.send(httpx.ReadTimeout("lost"))
    assert isinstance(pause, Sleep)
    again = flow.send(None)
    assert again == submit  # the same body and the same Idempotency-Key
    pause = flow.send(answer(again, 409, {"success": False, "error": "idempotency_in_progress", "message": "…"}))
    assert isinstance(pause, Sleep)
    again = flow.send(None)
    refused = {"success": False, "error": "insufficient_credits", "message": "…", "required": 0.01}
    with pytest.raises(InsufficientCredits):  # a 4xx answer is final
        flow.send(answer(again, 402, refused))

    credits = Operations(SETTINGS).credits()
    call = next(credits)
    assert call.idempotency_key is None
    with pytest.raises(APIConnectionError):
        credits.send(httpx.ReadTimeout("lost"))
