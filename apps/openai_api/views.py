"""The OpenAI-compatible API at /v1: OpenAI's request and answer shapes over KiwiWhale's jobs.

Each call is one job, created by POST /api/v1/generate.php in-process (kiwiwhale/lib/internal_api.py), so it is
paid, limited, recorded and listed exactly like any other; how each OpenAI field reaches a model's input is the
catalog's `openai` map (mapping.py). Views are async: a request waiting for its job, or streaming it, holds a
coroutine, not a thread (apps/generations/waits.py).
"""

import asyncio
import base64
import contextlib
import functools
import json
import logging
import math
import re
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from apps.billing import money
from apps.catalog.models import AIModel
from apps.generations.models import Job, Output
from apps.generations.providers import models_servable
from apps.generations.streams import text_deltas
from apps.generations.waits import job_status
from apps.openai_api.errors import OpenAIError
from apps.openai_api.jobs import (
    WAIT_SECONDS,
    caller_authenticate,
    job_extra,
    job_finished,
    job_submit,
    model_for,
    output_bytes,
)
from apps.openai_api.mapping import UnsupportedParameter, UploadedFile, openai_input

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 10  # an SSE comment while the job runs, so proxies keep the stream open
# Text that came whole (a local engine, or no Redis to carry deltas) is streamed a few words per chunk.
CHUNK_PATTERN = re.compile(r"(?:\S+\s*){1,3}|\s+")
FORM_NUMBERS = {"n": int, "speed": float, "temperature": float}


def openai_view(method: str):
    """Async, CSRF-exempt (bearer keys only), one method, every failure in OpenAI's error shape."""

    def decorate(view):
        @csrf_exempt
        @functools.wraps(view)
        async def wrapper(request, *args, **kwargs):
            if method != "*" and request.method != method:
                response = OpenAIError(405, "method_not_allowed", f"Use {method}.").response()
                response["Allow"] = method
                return response
            try:
                return await view(request, *args, **kwargs)
            except OpenAIError as exc:
                return exc.response()
            except UnsupportedParameter as exc:
                return OpenAIError(400, exc.code, str(exc), param=exc.param).response()
            except RequestDataTooBig:
                return OpenAIError(413, "request_too_large", "The request body is too large.").response()

        return wrapper

    return decorate


def _json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise OpenAIError(400, "invalid_json", f"The body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise OpenAIError(400, "invalid_json", "The body must be a JSON object.")
    return body


def _form_body(request) -> dict:
    """A multipart body as the OpenAI SDK sends it: text fields, and files (`image` or `image[]`, `file`)."""
    if not request.content_type.startswith("multipart/form-data"):
        raise OpenAIError(400, "invalid_request", "Send this request as multipart/form-data.")
    fields: dict = {}
    for name in request.POST:
        value = request.POST.get(name)
        cast = FORM_NUMBERS.get(name)
        if cast is not None:
            try:
                value = cast(value)
            except ValueError as exc:
                raise OpenAIError(400, "invalid_value", f"`{name}` must be a number.", param=name) from exc
        fields[name] = value
    for name in request.FILES:
        uploads = request.FILES.getlist(name)
        key = name.removesuffix("[]")
        if len(uploads) > 1 or key in fields:
            raise OpenAIError(400, "unsupported_value", f"Send one `{key}` file.", param=key)
        upload = uploads[0]
        fields[key] = UploadedFile(content=upload.read(), content_type=upload.content_type, name=upload.name)
    return fields


# --- models ---------------------------------------------------------------------------------------------------


@sync_to_async
def _models_offered() -> list[AIModel]:
    return [m for m in models_servable() if (m.openai or {}).get("endpoint")]


def _model_object(model: AIModel) -> dict:
    return {
        "id": model.public_model,
        "object": "model",
        "created": 0,  # the catalog keeps no creation date
        "owned_by": "kiwiwhale",
        "category": model.category,
        "endpoint": model.openai["endpoint"],
        "cost_credits": money.micro_to_json(model.base_cost_micro),
        "description": model.description,
    }


@openai_view("GET")
async def models_list(request):
    models = await _models_offered()
    return JsonResponse({"object": "list", "data": [_model_object(m) for m in models]})


@openai_view("GET")
async def model_detail(request, model_id: str):
    for model in await _models_offered():
        if model.public_model == model_id:
            return JsonResponse(_model_object(model))
    raise OpenAIError(404, "model_not_found", f"The model {model_id!r} does not exist or is not served now.")


# --- chat -------------------------------------------------------------------------------------------------------


@openai_view("POST")
async def chat_completions(request):
    body = _json_body(request)
    await caller_authenticate(request)
    model = await model_for(body.pop("model", None), "chat.completions")
    stream = body.pop("stream", False)
    stream_options = body.pop("stream_options", None)
    if stream not in (True, False, None):
        raise OpenAIError(400, "invalid_value", "`stream` must be true or false.", param="stream")
    if body.pop("n", None) not in (None, 1):
        raise OpenAIError(400, "unsupported_value", f"{model.public_model} gives one choice: n=1.", param="n")
    include_usage = False
    if stream_options is not None:
        if not stream or not isinstance(stream_options, dict) or set(stream_options) - {"include_usage"}:
            raise OpenAIError(
                400, "unsupported_parameter", "`stream_options` takes only include_usage, with stream=true."
            )
        include_usage = bool(stream_options.get("include_usage"))
    # A stream reads the worker's deltas, published through Redis: without Redis the text comes when the job ends.
    stream_text = bool(stream) and bool(settings.REDIS_URL)
    job_id = await job_submit(
        request, model=model, input=openai_input(model=model, fields=body), stream_text=stream_text
    )
    if stream:
        return _chat_stream(job_id, model, include_usage=include_usage, deltas=stream_text)
    job = await job_finished(job_id)
    text = _job_text(job)
    answer = {
        "id": f"chatcmpl-{job.pk}",
        "object": "chat.completion",
        "created": int(job.created_at.timestamp()),
        "model": model.public_model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(job, text),
        "kiwiwhale": job_extra(job),
    }
    return JsonResponse(answer, headers={"X-KiwiWhale-Job-Id": job.pk})


def _chat_stream(job_id: str, model: AIModel, *, include_usage: bool, deltas: bool) -> StreamingHttpResponse:
    """The completion as `chat.completion.chunk` events: the upstream's deltas as the worker publishes them
    (`deltas`), then whatever of the stored text they did not carry (all of it for a local engine, a few words a
    chunk), `finish_reason`, the usage chunk when asked, `[DONE]`. A failed job is an error event in OpenAI's
    shape. A client that leaves stops only this response: the job runs on and is charged as any other."""
    created = int(time.time())

    def chunk(delta: dict | None, finish_reason=None, **extra) -> bytes:
        data = {
            "id": f"chatcmpl-{job_id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model.public_model,
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n".encode()

    async def events():
        yield chunk({"role": "assistant", "content": ""})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS  # the deltas and the end share one wait, as without streaming
        sent = ""
        if deltas:
            quiet_since = time.monotonic()
            try:
                # Closed on leaving, by the end, the deadline or a client gone: its Redis connection goes with it.
                async with contextlib.aclosing(text_deltas(job_id, status=job_status)) as published:
                    async for delta in published:
                        if loop.time() >= deadline:
                            break  # job_finished answers 504 with the job id (it can still be polled)
                        if delta is not None:
                            sent += delta
                            quiet_since = time.monotonic()
                            yield chunk({"content": delta})
                        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                            quiet_since = time.monotonic()
                            yield b": the job is running\n\n"
            except OSError as exc:  # Redis went away: the rest comes from the stored output
                logger.warning("Chat stream of %s: the deltas could not be read (%s)", job_id, exc)
        waiting = asyncio.ensure_future(job_finished(job_id, deadline=deadline))
        try:
            while not waiting.done():
                done, _ = await asyncio.wait({waiting}, timeout=KEEPALIVE_SECONDS)
                if not done:
                    yield b": the job is running\n\n"
            try:
                job = waiting.result()
            except OpenAIError as exc:
                # An error inside an open stream: OpenAI's SDKs raise it from the event's `error` field.
                yield f"data: {json.dumps(exc.body())}\n\n".encode()
                yield b"data: [DONE]\n\n"
                return
            text = _job_text(job)
            if not text.startswith(sent):  # cannot happen (a stream that broke fails its job); never resend
                logger.error("Chat stream of %s: the stored text does not continue the streamed deltas", job_id)
            for piece in re.findall(CHUNK_PATTERN, text[len(sent) :] if text.startswith(sent) else ""):
                yield chunk({"content": piece})
            yield chunk({}, finish_reason="stop")
            if include_usage:
                yield chunk(None, usage=_usage(job, text), kiwiwhale=job_extra(job))
            yield b"data: [DONE]\n\n"
        finally:
            waiting.cancel()  # the client left: the job goes on, only the wait stops

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    response["X-KiwiWhale-Job-Id"] = job_id
    return response


def _job_text(job: Job) -> str:
    for output in job.outputs.all():
        if output.type == Output.Type.TEXT:
            return output.text
    raise OpenAIError(502, "no_text_output", f"Job {job.pk} produced no text.", job_id=job.pk)


def _usage(job: Job, text: str) -> dict:
    """The upstream's token counts when it reported them; else an estimate (4 characters a token)."""
    usage = job.usage or {}
    if all(isinstance(usage.get(name), int) for name in ("prompt_tokens", "completion_tokens")):
        prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    else:
        sent = sum(len(v) for v in job.input.values() if isinstance(v, str))
        prompt, completion = math.ceil(sent / 4), math.ceil(len(text) / 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


# --- images -----------------------------------------------------------------------------------------------------


@openai_view("POST")
async def images_generations(request):
    return await _images(request, _json_body(request), "images.generations")


@openai_view("POST")
async def images_edits(request):
    return await _images(request, _form_body(request), "images.edits")


async def _images(request, body: dict, endpoint: str):
    await caller_authenticate(request)
    model = await model_for(body.pop("model", None), endpoint)
    response_format = body.pop("response_format", None) or "url"
    if response_format not in ("url", "b64_json"):
        raise OpenAIError(400, "unsupported_value", "response_format: url or b64_json.", param="response_format")
    job = await job_finished(await job_submit(request, model=model, input=openai_input(model=model, fields=body)))
    data = []
    for output in job.outputs.all():
        if output.type != Output.Type.IMAGE or not output.file:
            continue
        if response_format == "b64_json":
            data.append({"b64_json": base64.b64encode(await output_bytes(output)).decode()})
        else:
            data.append({"url": request.build_absolute_uri(output.file.url)})
    if not data:
        raise OpenAIError(502, "no_image_output", f"Job {job.pk} produced no image.", job_id=job.pk)
    answer = {"created": int(job.created_at.timestamp()), "data": data, "kiwiwhale": job_extra(job)}
    return JsonResponse(answer, headers={"X-KiwiWhale-Job-Id": job.pk})


# --- audio ------------------------------------------------------------------------------------------------------


@openai_view("POST")
async def audio_speech(request):
    body = _json_body(request)
    await caller_authenticate(request)
    model = await model_for(body.pop("model", None), "audio.speech")
    job = await job_finished(await job_submit(request, model=model, input=openai_input(model=model, fields=body)))
    for output in job.outputs.all():
        if output.type == Output.Type.AUDIO and output.file:
            response = HttpResponse(await output_bytes(output), content_type=output.content_type)
            response["X-KiwiWhale-Job-Id"] = job.pk
            response["X-KiwiWhale-Cost-Credits"] = str(money.micro_to_json(job.cost_micro))
            return response
    raise OpenAIError(502, "no_audio_output", f"Job {job.pk} produced no audio.", job_id=job.pk)


@openai_view("POST")
async def audio_transcriptions(request):
    body = _form_body(request)
    await caller_authenticate(request)
    model = await model_for(body.pop("model", None), "audio.transcriptions")
    response_format = body.pop("response_format", None) or "json"
    if response_format not in ("json", "text"):
        raise OpenAIError(
            400, "unsupported_value", f"{model.public_model} answers json or text.", param="response_format"
        )
    job = await job_finished(await job_submit(request, model=model, input=openai_input(model=model, fields=body)))
    text = _job_text(job)
    if response_format == "text":
        return HttpResponse(text, content_type="text/plain; charset=utf-8", headers={"X-KiwiWhale-Job-Id": job.pk})
    return JsonResponse({"text": text, "kiwiwhale": job_extra(job)}, headers={"X-KiwiWhale-Job-Id": job.pk})


@openai_view("*")
async def not_found(request, rest: str = ""):
    raise OpenAIError(404, "not_found", f"There is no /v1/{rest}; see GET /v1/models and docs/openai.")
