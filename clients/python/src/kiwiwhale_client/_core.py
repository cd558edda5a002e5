"""The one request/response layer of both clients, without I/O ("sans-IO").

Each API operation is written once, here, as a generator that yields steps — `Call` (one HTTP exchange), `Sleep`,
`Save` (stream a file to disk) — and gets back what the step produced. `KiwiWhale` runs the steps with httpx's sync
client and `time.sleep`, `AsyncKiwiWhale` with httpx's async client and `asyncio.sleep`; retries, waits, polling,
errors and parsing live only here.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from kiwiwhale_client import errors
from kiwiwhale_client.types import TERMINAL_STATUSES, Job, Submission

__version__ = "0.1.0"

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_WAIT_SECONDS = 600.0  # `wait=True`: how long generate() waits for the job in all
SERVER_MAX_WAIT = 60  # the server holds one request at most this long (Prefer: wait=N, jobs.php?wait=N)
POLL_INTERVALS = (0.5, 1.0, 1.0, 2.0, 2.0, 3.0)  # between polls when the server does not hold requests
RETRY_STATUSES = frozenset({500, 502, 503, 504})
NOT_RETRIED_CODES = frozenset({"model_unavailable", "billing_disabled"})  # 503s that another try will not change

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One HTTP exchange. `path` is relative to the API root (`credits.php`) or an absolute URL."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: bool = True
    timeout: float | None = None
    idempotency_key: str | None = None  # set: the call may be sent again, with this same key


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Save:
    """Stream `url` (an output: absolute, needs no auth) into `path`."""

    url: str
    path: Path


Step = Call | Sleep | Save
Flow = Generator[Step, Any, T]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: httpx.Headers
    body: Any


@dataclass(frozen=True)
class Settings:
    """Where and as whom: explicit arguments, else `KIWIWHALE_BASE_URL` / `KIWIWHALE_API_KEY`, else the config
    file `kiwiwhale login` writes."""

    base_url: str
    api_key: str | None
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES

    @classmethod
    def resolve(cls, *, base_url: str | None, api_key: str | None, timeout: float, max_retries: int) -> Settings:
        from kiwiwhale_client.config import config_load

        stored = config_load()
        base = base_url or os.environ.get("KIWIWHALE_BASE_URL") or stored.get("base_url") or DEFAULT_BASE_URL
        key = api_key or os.environ.get("KIWIWHALE_API_KEY") or stored.get("api_key") or None
        return cls(base_url=base.rstrip("/"), api_key=key, timeout=timeout, max_retries=max_retries)

    @property
    def api_root(self) -> str:
        return f"{self.base_url}/api/v1/"


def idempotency_key_new() -> str:
    return f"kwc-{uuid.uuid4()}"


def request_args(settings: Settings, call: Call) -> dict[str, Any]:
    """The keyword arguments of `httpx.Client.request` / `AsyncClient.request` for a call."""
    absolute = bool(urlsplit(call.path).scheme)
    headers = {"User-Agent": f"kiwiwhale-client/{__version__}", "Accept": "application/json", **call.headers}
    # The key goes only to the instance's API, never to an output URL (which may be a storage bucket).
    if call.auth and settings.api_key and not absolute:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    if call.idempotency_key:
        headers["Idempotency-Key"] = call.idempotency_key
    content = None
    if call.body is not None:
        headers["Content-Type"] = "application/json"
        content = json.dumps(call.body, default=_json_default).encode()
    params = {name: value for name, value in (call.params or {}).items() if value is not None}
    return {
        "method": call.method,
        "url": call.path if absolute else settings.api_root + call.path,
        "params": params or None,
        "headers": headers,
        "content": content,
        "timeout": call.timeout if call.timeout is not None else settings.timeout,
    }


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Credits have at most 6 decimals and 10 digits before the point: a float prints the same digits back.
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def retry_delay(call: Call, attempt: int, outcome: httpx.Response | Exception, max_retries: int) -> float | None:
    """Seconds to wait before sending `call` again, or None: only a call with an Idempotency-Key is ever sent
    twice (the server then answers the first request's answer instead of doing it again), and only after a lost
    connection, a 5xx that another try may change, or a 409 saying the first try is still running."""
    if call.idempotency_key is None or attempt >= max_retries:
        return None
    if isinstance(outcome, httpx.Response):
        code = _error_code(outcome)
        transient = outcome.status_code in RETRY_STATUSES and code not in NOT_RETRIED_CODES
        if not (transient or code == "idempotency_in_progress"):
            return None
        after = errors.retry_after_seconds(outcome.headers)
        if after is not None:
            return min(after, 30.0)
    elif not isinstance(outcome, httpx.TransportError):
        return None
    return min(8.0, 0.5 * 2**attempt) * random.uniform(0.75, 1.25)


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


def reply_parse(outcome: httpx.Response | Exception) -> Reply:
    """The reply to a call, or the typed exception of its error."""
    if isinstance(outcome, Exception):
        raise errors.APIConnectionError(str(outcome) or type(outcome).__name__) from outcome
    try:
        body = json.loads(outcome.content, parse_float=Decimal) if outcome.content else None
    except ValueError:
        body = None
    if not outcome.is_success:
        raise errors.error_for(outcome, body)
    if not isinstance(body, dict):
        raise errors.APIError(
            f"Expected a JSON object from {outcome.request.url}, got {outcome.headers.get('content-type')!r}.",
            code="invalid_response",
            status=outcome.status_code,
            headers=outcome.headers,
        )
    return Reply(outcome.status_code, outcome.headers, body)


def reply(call: Call, max_retries: int) -> Flow[Reply]:
    attempt = 0
    while True:
        outcome = yield call
        delay = retry_delay(call, attempt, outcome, max_retries)
        if delay is None:
            return reply_parse(outcome)
        attempt += 1
        yield Sleep(delay)


class Operations:
    """Every operation of the API, once. The clients run these flows; nothing here does I/O."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def _json(self, call: Call) -> Flow[Any]:
        return (yield from reply(call, self.settings.max_retries)).body

    # --- account ---------------------------------------------------------------------------------------------

    def register(self, *, name: str | None, email: str | None, referral_code: str | None) -> Flow[Any]:
        body = {"name": name, "email": email, "referral_code": referral_code}
        call = Call("POST", "agent_register.php", body={k: v for k, v in body.items() if v is not None}, auth=False)
        return (yield from self._json(call))

    def credits(self) -> Flow[Any]:
        return (yield from self._json(Call("GET", "credits.php")))

    def usage(self, *, limit: int | None, cursor: str | None, kind: str | None, key: str | int | None) -> Flow[Any]:
        params = {"limit": limit, "cursor": cursor, "kind": kind, "key": key}
        return (yield from self._json(Call("GET", "usage.php", params=params)))

    def webhook_secret(self, *, rotate: bool) -> Flow[Any]:
        return (yield from self._json(Call("POST" if rotate else "GET", "webhook_secret.php")))

    # --- keys ------------------------------------------------------------------------------------------------

    def key_list(self) -> Flow[Any]:
        return (yield from self._json(Call("GET", "keys.php")))["keys"]

    def key_create(self, limits: Mapping[str, Any]) -> Flow[Any]:
        body = {name: value for name, value in key_fields(limits).items() if value is not None}
        return (yield from self._json(Call("POST", "keys.php", body=body)))

    def key_update(self, key_id: str | int, changes: Mapping[str, Any]) -> Flow[Any]:
        body = {"key_id": str(key_id), **key_fields(changes)}
        return (yield from self._json(Call("POST", "key_update.php", body=body)))["key"]

    def key_revoke(self, key_id: str | int) -> Flow[Any]:
        return (yield from self._json(Call("POST", "key_revoke.php", body={"key_id": str(key_id)})))["key"]

    def key_rotate(self, key_id: str | int, *, grace_seconds: int) -> Flow[Any]:
        body = {"key_id": str(key_id), "grace_seconds": grace_seconds}
        return (yield from self._json(Call("POST", "key_rotate.php", body=body)))

    # --- models ----------------------------------------------------------------------------------------------

    def models(self, *, category: str | None) -> Flow[Any]:
        listed = yield from self._json(Call("GET", "models.php", params={"category": category}, auth=False))
        return listed["models"]

    def model(self, public_model: str) -> Flow[Any]:
        for model in (yield from self.models(category=None)):
            if public_model in (model["public_model"], model.get("product_id")):
                return model
        raise errors.ModelNotFound(f"There is no model {public_model!r} served now; see models.php.", status=404)

    def quote(self, model: str, input: Mapping[str, Any] | None) -> Flow[Any]:
        body = {"model": model, "input": dict(input or {})}
        return (yield from self._json(Call("POST", "quote.php", body=body, auth=False)))

    # --- jobs ------------------------------------------------------------------------------------------------

    def generate(
        self,
        model: str,
        input: Mapping[str, Any] | None,
        *,
        wait: bool | float,
        idempotency_key: str | None,
        webhook_url: str | None,
        webhook_events: list[str] | None,
        max_cost_credits: Decimal | int | str | None,
        cancel_after: str | None,
        on_update: Callable[[Job | Submission], None] | None,
        step_seconds: int,
    ) -> Flow[Any]:
        body: dict[str, Any] = {"model": model, "input": dict(input or {})}
        if webhook_url:
            body["webhook_url"] = webhook_url
        if webhook_events:
            body["webhook_events"] = list(webhook_events)
        if max_cost_credits is not None:
            body["max_cost_credits"] = Decimal(str(max_cost_credits))
        headers = {"Cancel-After": cancel_after} if cancel_after else {}
        seconds = _wait_seconds(wait)
        deadline = time.monotonic() + seconds
        step = max(1, min(step_seconds, SERVER_MAX_WAIT))
        if seconds:
            headers["Prefer"] = f"wait={min(step, _ceil(seconds))}"
        call = Call(
            "POST",
            "generate.php",
            body=body,
            headers=headers,
            idempotency_key=idempotency_key or idempotency_key_new(),
            timeout=self.settings.timeout + (step if seconds else 0),
        )
        submitted = yield from reply(call, self.settings.max_retries)
        if on_update:
            on_update(submitted.body)
        if not seconds or submitted.body.get("status") in TERMINAL_STATUSES:
            return submitted.body
        # The server holds a poll (`?wait=`) when it honoured `Prefer: wait`; otherwise poll at intervals.
        holds = "preference-applied" in submitted.headers
        return (yield from self._wait(submitted.body["job_id"], deadline, holds=holds, step=step, on_update=on_update))

    def wait(self, job_id: str, *, timeout: float, on_update: Callable[[Job], None] | None, step: int) -> Flow[Any]:
        deadline = time.monotonic() + timeout
        return (yield from self._wait(job_id, deadline, holds=True, step=step, on_update=on_update))

    def _wait(self, job_id: str, deadline: float, *, holds: bool, step: int, on_update) -> Flow[Any]:
        polls = 0
        while True:
            remaining = deadline - time.monotonic()
            hold = min(step, _ceil(remaining)) if holds and remaining > 0 else 0
            job = yield from self._json(
                Call(
                    "GET",
                    "jobs.php",
                    params={"job_id": job_id, "wait": hold or None},
                    timeout=self.settings.timeout + hold,
                )
            )
            if on_update:
                on_update(job)
            if job["status"] in TERMINAL_STATUSES or time.monotonic() >= deadline:
                return job
            if not holds:
                yield Sleep(min(POLL_INTERVALS[min(polls, len(POLL_INTERVALS) - 1)], deadline - time.monotonic()))
                polls += 1

    def job(self, job_id: str) -> Flow[Any]:
        return (yield from self._json(Call("GET", "jobs.php", params={"job_id": job_id})))

    def jobs(self, *, status: str | None, limit: int | None, cursor: str | None) -> Flow[Any]:
        params = {"status": status, "limit": limit, "cursor": cursor}
        return (yield from self._json(Call("GET", "jobs.php", params=params)))

    def cancel(self, job_id: str) -> Flow[Any]:
        return (yield from self._json(Call("POST", "cancel.php", body={"job_id": job_id})))

    def download(self, job: Mapping[str, Any], directory: str | os.PathLike[str]) -> Flow[list[Path]]:
        """Each output file of a job into `directory`: `<job_id>-<n>.<ext>`; text and json outputs without a file
        are written as `.txt` / `.json`."""
        if job.get("status") != "completed":
            raise errors.KiwiWhaleError(f"The job is {job.get('status')}; only a completed job has outputs.")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for number, output in enumerate(job.get("outputs") or [], start=1):
            stem = f"{job['job_id']}-{number}"
            if output.get("url"):
                suffix = Path(urlsplit(output["url"]).path).suffix or Path(output.get("file_name") or "").suffix
                path = folder / f"{stem}{suffix}"
                yield Save(output["url"], path)
            elif output.get("type") == "text":
                path = folder / f"{stem}.txt"
                path.write_text(output.get("text", ""), encoding="utf-8")
            else:
                path = folder / f"{stem}.json"
                path.write_text(json.dumps(output.get("data"), default=str, indent=2), encoding="utf-8")
            paths.append(path)
        return paths

    # --- billing ---------------------------------------------------------------------------------------------

    def topup_quote(self, credits: Decimal | int | str) -> Flow[Any]:
        return (yield from self._json(Call("GET", "agent_topup.php", params={"credits": str(credits)})))

    def topup(self, credits: Decimal | int | str, *, idempotency_key: str | None) -> Flow[Any]:
        call = Call(
            "POST",
            "agent_topup.php",
            body={"credits": Decimal(str(credits))},
            idempotency_key=idempotency_key or idempotency_key_new(),
        )
        return (yield from self._json(call))

    def setup_payment(self) -> Flow[Any]:
        return (yield from self._json(Call("POST", "agent_setup_payment.php")))

    def confirm_payment_method(self, *, setup_intent_id: str | None, payment_method_id: str | None) -> Flow[Any]:
        body = {"setup_intent_id": setup_intent_id, "payment_method_id": payment_method_id}
        body = {name: value for name, value in body.items() if value}
        return (yield from self._json(Call("POST", "agent_confirm_payment_method.php", body=body)))

    def payment_methods(self) -> Flow[Any]:
        return (yield from self._json(Call("GET", "payment_methods.php")))["payment_methods"]

    def autotopup(self) -> Flow[Any]:
        return (yield from self._json(Call("GET", "agent_autotopup.php")))

    def autotopup_set(self, settings: Mapping[str, Any]) -> Flow[Any]:
        body = {
            name: Decimal(str(value)) if name.endswith("_credits") else value
            for name, value in settings.items()
            if value is not None
        }
        return (yield from self._json(Call("POST", "agent_autotopup.php", body=body)))


UNSET: Any = object()  # key_update(): a field not given stays as it is (None clears it)


def key_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of key_create / key_update → the body: credits as exact Decimals, datetimes as ISO 8601."""
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if value is UNSET:
            continue
        if name.endswith("_credits") and value is not None:
            value = Decimal(str(value))
        elif name == "expires_at" and hasattr(value, "isoformat"):
            value = value.isoformat()
        elif name in ("scopes", "allowed_models", "allowed_ips") and value is not None:
            value = list(value)
        body[name] = value
    return body


def _wait_seconds(wait: bool | float) -> float:
    if wait is True:
        return DEFAULT_WAIT_SECONDS
    if wait is False or wait is None:
        return 0.0
    if wait < 0:
        raise ValueError("wait takes True, False or a number of seconds ≥ 0.")
    return float(wait)


def _ceil(seconds: float) -> int:
    return max(1, int(-(-seconds // 1)))
