"""Prefer: wait, jobs.php?wait=, Cancel-After and cancel, on the real server (uvicorn) with a real worker."""

import threading
import time

import httpx
import pytest

from apps.billing.services import wallet_get
from apps.generations.models import Job
from tests.api.conftest import FAST, SLOW_MODEL

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SLOW = {"model": SLOW_MODEL, "input": {"prompt": "a long one"}}


def _submit(base, agent, body, **headers):
    return httpx.post(f"{base}/api/v1/generate.php", json=body, headers={**agent.headers, **headers}, timeout=90)


def _processing(base, agent, job_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{base}/api/v1/jobs.php", params={"job_id": job_id}, headers=agent.headers).json()
        if body["status"] == "processing" and Job.objects.get(pk=job_id).poll_at is not None:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{job_id} never reached the upstream")


def test_it_answers_prefer_wait_with_the_finished_job_as_jobs_php_shows_it(web_server, celery_worker_process, agent):
    response = _submit(web_server, agent, FAST, Prefer="wait=30")
    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=30"
    body = response.json()
    assert body["success"] is True and body["status"] == "completed"
    assert body["outputs"][0]["url"].startswith(f"{web_server}/media/")
    poll = httpx.get(f"{web_server}/api/v1/jobs.php", params={"job_id": body["job_id"]}, headers=agent.headers)
    assert poll.json() == body


def test_it_answers_202_after_the_wait_when_the_job_still_runs(web_server, celery_worker_process, endless_fal, agent):
    started = time.monotonic()
    response = _submit(web_server, agent, SLOW, Prefer="respond-async, wait=2")
    elapsed = time.monotonic() - started
    assert response.status_code == 202 and response.headers["Preference-Applied"] == "wait=2"
    assert 1.8 <= elapsed < 10
    body = response.json()
    assert body["status"] == "queued" and body["poll_url"] == f"{web_server}/api/v1/jobs.php?job_id={body['job_id']}"
    cancel = httpx.post(f"{web_server}/api/v1/cancel.php", json={"job_id": body["job_id"]}, headers=agent.headers)
    assert cancel.status_code == 200 and cancel.json()["status"] == "canceled"


def test_a_jobs_php_wait_wakes_when_the_job_ends_and_a_cancel_of_a_processing_job_refunds_and_stops_the_upstream(
    web_server, celery_worker_process, endless_fal, agent
):
    job_id = _submit(web_server, agent, SLOW).json()["job_id"]
    _processing(web_server, agent, job_id)

    timed = httpx.get(f"{web_server}/api/v1/jobs.php", params={"job_id": job_id, "wait": 1}, headers=agent.headers)
    assert timed.status_code == 200 and timed.json()["status"] == "processing"

    answers = {}

    def wait():
        started = time.monotonic()
        answers["response"] = httpx.get(
            f"{web_server}/api/v1/jobs.php", params={"job_id": job_id, "wait": 30}, headers=agent.headers, timeout=60
        )
        answers["elapsed"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.0)
    cancel = httpx.post(f"{web_server}/api/v1/jobs/{job_id}/cancel", headers=agent.headers)
    waiter.join(40)
    assert cancel.status_code == 200 and cancel.json()["status"] == "canceled"
    assert answers["response"].json()["status"] == "canceled"
    assert 0.9 <= answers["elapsed"] < 4, answers["elapsed"]  # woken by the cancel, not by the 30 s
    assert wallet_get(user=agent).balance_micro == 10_000_000
    assert endless_fal.seen("PUT"), "the upstream was not asked to stop"


def test_cancel_after_cancels_a_job_not_finished_by_then_and_returns_its_credits(
    web_server, celery_worker_process, endless_fal, agent
):
    response = _submit(web_server, agent, SLOW, **{"Cancel-After": "2s"})
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert wallet_get(user=agent).balance_micro < 10_000_000
    ended = httpx.get(
        f"{web_server}/api/v1/jobs.php", params={"job_id": job_id, "wait": 20}, headers=agent.headers, timeout=60
    ).json()
    assert ended["status"] == "canceled"
    assert ended["error"]["code"] == "deadline_exceeded"
    assert ended["deadline_at"] is not None
    assert wallet_get(user=agent).balance_micro == 10_000_000
    deadline = time.monotonic() + 10  # a deadline met during the upstream's submit is stopped by the worker
    while not endless_fal.seen("PUT") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert endless_fal.seen("PUT"), "the upstream was not asked to stop"


@pytest.mark.parametrize("value", ["", "soon", "30", "0s", "25h", "1m-2s"])
def test_it_refuses_a_cancel_after_it_cannot_read_and_charges_nothing(web_server, agent, value):
    response = _submit(web_server, agent, FAST, **{"Cancel-After": value})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert not Job.objects.exists()


def test_it_refuses_a_jobs_wait_out_of_range(web_server, agent):
    response = httpx.get(f"{web_server}/api/v1/jobs.php", params={"job_id": "job_x", "wait": 61}, headers=agent.headers)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
