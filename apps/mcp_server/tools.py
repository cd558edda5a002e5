"""The MCP tools: each is one /api/v1 call, and its `structuredContent` is that endpoint's JSON answer.

Tools reach the API in-process (kiwiwhale/lib/internal_api.py) with the caller's own key, so a tool does what the
endpoint does, with the same key limits, Idempotency-Key, ledger and errors. Input schemas come from the catalog:
`generate` takes each servable model's own input JSON Schema, `list_models` the catalog's categories.
"""

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import mcp_types as types
from asgiref.sync import sync_to_async
from django.db import close_old_connections

from apps.catalog.models import Category
from apps.generations.models import Job, Output
from apps.generations.providers import models_servable
from apps.generations.waits import MAX_WAIT_SECONDS, job_wait
from kiwiwhale.lib.internal_api import ApiAnswer, Caller, api_call

INLINE_MAX_BYTES = 512 * 1024  # image and audio outputs up to this size are also sent as MCP content
CHARGES_A_CARD = "It charges the account's saved card (real money) and adds the credits to the wallet."

IDEMPOTENCY = {
    "idempotency_key": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "description": "Optional. The same key and arguments again return the first answer and do nothing twice.",
    }
}


@dataclass(frozen=True)
class Answer:
    api: ApiAnswer
    media: list  # extra MCP content blocks (small images and audio)


def db(function):
    """An ORM read from the MCP app, outside Django's request cycle: connections are checked as a request would."""

    def run(*args, **kwargs):
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(run)


@db
def _servable_models() -> list[tuple[str, dict]]:
    return [(m.public_model, m.input_schema) for m in models_servable()]


async def tools_list() -> list[types.Tool]:
    models = await _servable_models()
    model_ids = [public_model for public_model, _ in models]
    model_property = {"type": "string", "enum": model_ids, "description": "A model id (see list_models)."}
    # Each model's own input schema applies when `model` names it.
    per_model = [
        {"if": {"properties": {"model": {"const": public_model}}}, "then": {"properties": {"input": schema}}}
        for public_model, schema in models
    ]
    wait = {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_WAIT_SECONDS,
        "default": 0,
        "description": "Seconds to wait for the job to end; if it does, the result is the job with its outputs.",
    }
    job_id = {"type": "string", "description": "A job id, job_…"}
    read_only = types.ToolAnnotations(read_only_hint=True, open_world_hint=False)
    return [
        _tool(
            "list_models",
            "The models this instance can serve now, with cost in credits and input JSON Schema (models.php).",
            {"category": {"type": "string", "enum": list(Category.values)}},
            annotations=read_only,
        ),
        _tool(
            "get_model",
            "One model: its input JSON Schema (`schema`) and its cost (`cost_credits`), as models.php lists it.",
            {"model": model_property},
            ["model"],
            annotations=read_only,
        ),
        _tool(
            "generate",
            "Submit a generation job (generate.php). It spends the job's cost in credits from the wallet; a failed "
            "or canceled job gives them back. With wait_seconds, waits for the job and returns it with its outputs "
            "(small images and audio also as content).",
            {
                "model": model_property,
                "input": {"type": "object", "description": "The model's input: see its schema (get_model)."},
                "wait_seconds": wait,
                **IDEMPOTENCY,
            },
            ["model", "input"],
            extra={"allOf": per_model} if per_model else None,
        ),
        _tool(
            "get_job",
            "A job with its status and outputs (jobs.php?job_id=); wait_seconds waits for it to end.",
            {"job_id": job_id, "wait_seconds": wait},
            ["job_id"],
            annotations=read_only,
        ),
        _tool(
            "cancel_job",
            "Cancel a queued or processing job; every credit comes back (cancel.php).",
            {"job_id": job_id},
            ["job_id"],
        ),
        _tool(
            "list_jobs",
            "The account's jobs, newest first (jobs.php); pass `next`'s cursor for older ones.",
            {
                "status": {"type": "string", "enum": list(Job.Status.values)},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                "cursor": {"type": "string"},
            },
            annotations=read_only,
        ),
        _tool("get_credits", "The wallet's balance in credits (credits.php).", {}, annotations=read_only),
        _tool(
            "get_usage",
            "Ledger entries (holds, charges, refunds, top-ups) and card payments, newest first (usage.php).",
            {
                "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                "cursor": {"type": "string"},
                "kind": {"type": "string"},
            },
            annotations=read_only,
        ),
        _tool(
            "quote",
            "What a job would cost, without running it: the validated input and cost_credits.",
            {"model": model_property, "input": {"type": "object"}},
            ["model", "input"],
            annotations=read_only,
            extra={"allOf": per_model} if per_model else None,
        ),
        _tool(
            "topup",
            f"Buy credits now (agent_topup.php). {CHARGES_A_CARD} The card pays the credits plus the card fee.",
            {"credits": {"type": "number", "exclusiveMinimum": 0, "description": "Credits to add."}, **IDEMPOTENCY},
            ["credits"],
            annotations=types.ToolAnnotations(destructive_hint=False, idempotent_hint=False, open_world_hint=True),
        ),
        _tool(
            "setup_payment",
            "Start saving a card for top-ups (agent_setup_payment.php): returns a setup_url where the account "
            "holder enters it. Saving a card lets topup and auto top-up charge it later.",
            {},
        ),
        _tool(
            "set_auto_topup",
            f"Turn auto top-up on or off (agent_autotopup.php). When on, {CHARGES_A_CARD[3:]} each time the "
            "balance falls below trigger_credits: amount_credits (fixed mode) or up to target_credits (buffer).",
            {
                "enabled": {"type": "boolean"},
                "mode": {"type": "string", "enum": ["fixed", "buffer"]},
                "trigger_credits": {"type": "number"},
                "amount_credits": {"type": "number"},
                "target_credits": {"type": "number"},
                "daily_cap_credits": {"type": ["number", "null"]},
                "monthly_cap_credits": {"type": ["number", "null"]},
            },
            ["enabled"],
        ),
    ]


def _tool(name, description, properties, required=(), *, annotations=None, extra=None) -> types.Tool:
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if extra:
        schema.update(extra)
    return types.Tool(name=name, description=description, input_schema=schema, annotations=annotations)


# --- calls -----------------------------------------------------------------------------------------------------


def _idempotency(args: dict) -> dict:
    key = args.get("idempotency_key")
    return {"Idempotency-Key": key} if key else {}


def _query(args: dict, *names: str) -> dict:
    return {name: args[name] for name in names if args.get(name) is not None}


async def _job_answer(caller: Caller, job_id: str, wait_seconds) -> Answer:
    if wait_seconds:
        await job_wait(job_id, timeout=float(wait_seconds))
    answer = await api_call(caller, "GET", "jobs.php", params={"job_id": job_id})
    return Answer(answer, await _media(answer.body) if answer.ok else [])


async def generate(caller: Caller, args: dict) -> Answer:
    body = {"model": args.get("model"), "input": args.get("input") or {}}
    answer = await api_call(caller, "POST", "generate.php", json=body, headers=_idempotency(args))
    if not answer.ok or not args.get("wait_seconds"):
        return Answer(answer, [])
    job_id = answer.body["job_id"]
    status = await job_wait(job_id, timeout=float(args["wait_seconds"]))
    if status not in Job.TERMINAL:
        return Answer(answer, [])  # still running: the submission's answer, with its poll_url
    return await _job_answer(caller, job_id, 0)


async def get_model(caller: Caller, args: dict) -> Answer:
    answer = await api_call(caller, "GET", "models.php")
    for model in answer.body.get("models", []):
        if model["public_model"] == args.get("model"):
            return Answer(ApiAnswer(200, model, answer.headers), [])
    message = f"There is no model {args.get('model')!r} served now; see list_models."
    return Answer(ApiAnswer(404, {"success": False, "error": "model_not_found", "message": message}, {}), [])


def _simple(method: str, path: str, *, query=(), body=(), idempotent=False):
    async def call(caller: Caller, args: dict) -> Answer:
        answer = await api_call(
            caller,
            method,
            path,
            params=_query(args, *query) or None,
            json=_query(args, *body) if method == "POST" else None,
            headers=_idempotency(args) if idempotent else None,
        )
        return Answer(answer, [])

    return call


async def get_job(caller: Caller, args: dict) -> Answer:
    return await _job_answer(caller, str(args.get("job_id", "")), args.get("wait_seconds"))


HANDLERS: dict[str, Callable[[Caller, dict], Awaitable[Answer]]] = {
    "list_models": _simple("GET", "models.php", query=("category",)),
    "get_model": get_model,
    "generate": generate,
    "get_job": get_job,
    "cancel_job": _simple("POST", "cancel.php", body=("job_id",)),
    "list_jobs": _simple("GET", "jobs.php", query=("status", "limit", "cursor")),
    "get_credits": _simple("GET", "credits.php"),
    "get_usage": _simple("GET", "usage.php", query=("limit", "cursor", "kind")),
    "quote": _simple("POST", "quote.php", body=("model", "input")),
    "topup": _simple("POST", "agent_topup.php", body=("credits",), idempotent=True),
    "setup_payment": _simple("POST", "agent_setup_payment.php"),
    "set_auto_topup": _simple(
        "POST",
        "agent_autotopup.php",
        body=(
            "enabled",
            "mode",
            "trigger_credits",
            "amount_credits",
            "target_credits",
            "daily_cap_credits",
            "monthly_cap_credits",
        ),
    ),
}


async def tool_call(caller: Caller, name: str, args: dict) -> types.CallToolResult:
    handler = HANDLERS.get(name)
    if handler is None:
        raise ValueError(f"Unknown tool {name!r}.")
    try:
        answer = await handler(caller, args or {})
    except (TypeError, ValueError) as exc:  # arguments of the wrong type, e.g. wait_seconds="soon"
        message = f"Invalid arguments for {name}: {exc}"
        answer = Answer(ApiAnswer(400, {"success": False, "error": "invalid_request", "message": message}, {}), [])
    body = answer.api.body
    text = types.TextContent(text=json.dumps(body))
    return types.CallToolResult(content=[text, *answer.media], structured_content=body, is_error=not answer.api.ok)


@db
def _small_files(job_id: str) -> list[tuple[str, str, bytes | None]]:
    files = []
    for output in Output.objects.filter(job_id=job_id):
        content = None
        if (
            output.type in (Output.Type.IMAGE, Output.Type.AUDIO)
            and output.file
            and output.file_size <= INLINE_MAX_BYTES
        ):
            with output.file.open("rb") as handle:
                content = handle.read()
        files.append((output.type, output.content_type, content))
    return files


async def _media(job: dict) -> list:
    if job.get("status") != Job.Status.COMPLETED or not job.get("outputs"):
        return []
    blocks = []
    for kind, content_type, content in await _small_files(job["job_id"]):
        if content is None:
            continue
        data = base64.b64encode(content).decode()
        if kind == Output.Type.IMAGE:
            blocks.append(types.ImageContent(data=data, mime_type=content_type))
        else:
            blocks.append(types.AudioContent(data=data, mime_type=content_type))
    return blocks
