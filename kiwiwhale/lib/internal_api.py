"""Calling this instance's own `/api/v1` from inside the process: how the OpenAI and MCP facades reach the API.

A facade translates its request into an `/api/v1` request and sends it, in memory, through the same Django ASGI
application that serves HTTP (no socket, no second code path): the same authentication, key limits,
`Idempotency-Key`, validation, pricing, ledger and error codes apply, and the JSON that comes back is exactly what
the endpoint answers over HTTP. The caller's host, scheme and client address are kept, so absolute URLs and
per-address rules come out as they would for a direct call.
"""

from dataclasses import dataclass

import httpx

# The headers of the outer request that the API call carries on (the key, retries, proxies' client address).
FORWARDED = ("authorization", "idempotency-key", "user-agent", "x-forwarded-for", "x-forwarded-proto", "x-real-ip")

_django_app = None


def _app():
    global _django_app
    if _django_app is None:
        from django.core.handlers.asgi import ASGIHandler

        _django_app = ASGIHandler()
    return _django_app


@dataclass(frozen=True)
class Caller:
    """Who asked, as the outer request shows it."""

    scheme: str
    host: str
    client_ip: str
    headers: dict

    @classmethod
    def from_headers(cls, *, scheme: str, headers, client_ip: str) -> "Caller":
        kept = {name: headers[name] for name in FORWARDED if headers.get(name)}
        return cls(scheme=scheme, host=headers.get("host") or "localhost", client_ip=client_ip, headers=kept)

    @classmethod
    def from_django(cls, request) -> "Caller":
        return cls.from_headers(
            scheme=request.scheme,
            headers={name: request.headers.get(name) for name in (*FORWARDED, "host")},
            client_ip=request.META.get("REMOTE_ADDR") or "127.0.0.1",
        )

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: dict
    headers: httpx.Headers

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


SCOPE_KEY = "kiwiwhale.options"


def internal_options(request) -> dict:
    """What the facade that made this in-process call asked for beyond the published request (`api_call`'s
    `options`); empty for a request from outside, which cannot set it: it lives in the ASGI scope, not a header."""
    scope = getattr(request, "scope", None)  # an ASGI request's (a DRF request passes the attribute through)
    return (scope or {}).get(SCOPE_KEY) or {}


async def api_call(
    caller: Caller,
    method: str,
    path: str,
    *,
    json=None,
    params=None,
    headers: dict | None = None,
    options: dict | None = None,
) -> ApiAnswer:
    """`path` under /api/v1, e.g. `generate.php`. `options` reach the view as `internal_options(request)`."""
    app = _app()
    if options:
        django_app = app

        async def app(scope, receive, send):
            await django_app({**scope, SCOPE_KEY: options}, receive, send)

    transport = httpx.ASGITransport(app=app, client=(caller.client_ip, 0))
    async with httpx.AsyncClient(transport=transport, base_url=caller.base_url) as client:
        response = await client.request(
            method,
            f"/api/v1/{path}",
            json=json,
            params=params,
            headers={**caller.headers, **(headers or {})},
        )
    try:
        body = response.json()
    except ValueError:
        body = {"success": False, "error": "internal_error", "message": response.text[:500]}
    if not isinstance(body, dict):
        body = {"success": False, "error": "internal_error", "message": "Unexpected answer."}
    return ApiAnswer(status=response.status_code, body=body, headers=response.headers)
