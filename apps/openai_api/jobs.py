"""A /v1 call's job: submitted through generate.php, waited for without a thread, read with its outputs."""

import asyncio

from asgiref.sync import sync_to_async

from apps.accounts.authentication import ApiKeyAuthentication
from apps.catalog.models import AIModel
from apps.generations.models import Job
from apps.generations.waits import job_wait
from apps.openai_api.errors import OpenAIError, error_from_api, error_from_job
from kiwiwhale.lib.internal_api import Caller, api_call

# How long a /v1 request waits for its job before answering 504 with the job id (which can still be polled).
WAIT_SECONDS = 600

ENDPOINT_PATHS = {
    "chat.completions": "/v1/chat/completions",
    "images.generations": "/v1/images/generations",
    "images.edits": "/v1/images/edits",
    "audio.speech": "/v1/audio/speech",
    "audio.transcriptions": "/v1/audio/transcriptions",
}


@sync_to_async
def caller_authenticate(request) -> None:
    """401 before anything else; the API call authenticates the same key again."""
    from rest_framework.exceptions import AuthenticationFailed

    try:
        found = ApiKeyAuthentication().authenticate(request)
    except AuthenticationFailed as exc:
        raise OpenAIError(401, "invalid_api_key", str(exc.detail)) from exc
    if found is None:
        raise OpenAIError(401, "invalid_api_key", "Send your KiwiWhale API key: 'Authorization: Bearer kw_…'.")


async def model_for(model_id, endpoint: str) -> AIModel:
    if not isinstance(model_id, str) or not model_id:
        raise OpenAIError(400, "invalid_value", "`model` is required: a model id from GET /v1/models.", param="model")
    # PostgreSQL refuses NUL in text: such an id is no model's.
    model = None if "\x00" in model_id else await AIModel.objects.filter(public_model=model_id, enabled=True).afirst()
    if model is None:
        raise OpenAIError(404, "model_not_found", f"The model {model_id!r} does not exist.", param="model")
    served_by = (model.openai or {}).get("endpoint")
    if served_by != endpoint:
        where = f"use POST {ENDPOINT_PATHS[served_by]}" if served_by in ENDPOINT_PATHS else "use /api/v1/generate.php"
        raise OpenAIError(
            400,
            "model_not_supported",
            f"{model_id} ({model.category}) is not served by this endpoint: {where}.",
            param="model",
        )
    return model


async def job_submit(request, *, model: AIModel, input: dict, stream_text: bool = False) -> str:
    """Creates the job exactly as POST /api/v1/generate.php does (same key, limits, Idempotency-Key, ledger).
    `stream_text`: the worker publishes the text as the upstream sends it (apps/generations/streams.py)."""
    answer = await api_call(
        Caller.from_django(request),
        "POST",
        "generate.php",
        json={"model": model.public_model, "input": input},
        options={"stream_text": True} if stream_text else None,
    )
    if not answer.ok:
        raise error_from_api(answer.status, answer.body, answer.headers)
    return answer.body["job_id"]


async def job_finished(job_id: str, *, deadline: float | None = None) -> Job:
    """Waits for the job to end (a coroutine, no thread) and reads it with its outputs; errors for any other end.
    `deadline` (the loop's clock): when the wait ends with a 504; default WAIT_SECONDS from now."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS if deadline is None else deadline
    while True:
        status = await job_wait(job_id, timeout=max(0.0, min(deadline - loop.time(), 60)))
        if status in Job.TERMINAL:
            break
        if loop.time() >= deadline:
            raise OpenAIError(
                504,
                "job_still_running",
                f"Job {job_id} is still {status}; poll GET /api/v1/jobs.php?job_id={job_id}.",
                job_id=job_id,
            )
    job = await _job_read(job_id)
    if job.status != Job.Status.COMPLETED:
        raise error_from_job(job)
    return job


@sync_to_async
def _job_read(job_id: str) -> Job:
    job = Job.objects.with_outputs().get(pk=job_id)
    list(job.outputs.all())  # loaded here, not in the event loop
    return job


@sync_to_async
def output_bytes(output) -> bytes:
    with output.file.open("rb") as handle:
        return handle.read()


def job_extra(job: Job) -> dict:
    """What KiwiWhale adds to an OpenAI answer: the job behind it and what it cost."""
    from apps.billing import money

    return {"job_id": job.pk, "cost_credits": money.micro_to_json(job.cost_micro), "status": job.status}
