"""Typed exceptions: one per error `code` of the API contract, grouped by HTTP status.

Every error response of /api/v1 is `{"success": false, "error": "<code>", "message": "…", …}`; the exception keeps
the code (`exc.code`), the message, the HTTP status and the whole body (`exc.body`, for the extra fields).
"""

from __future__ import annotations

from typing import Any

import httpx


class KiwiWhaleError(Exception):
    """Base of every error this client raises."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status
        self.body: dict[str, Any] = body if isinstance(body, dict) else {}

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status else ""
        return f"{prefix}{self.code}: {self.message}"


class APIConnectionError(KiwiWhaleError):
    """No answer: the connection failed or timed out (after any retries the request was allowed)."""

    code = "connection_error"


class APIError(KiwiWhaleError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        body: Any = None,
        headers: httpx.Headers | None = None,
    ):
        super().__init__(message, code=code, status=status, body=body)
        self.headers = headers if headers is not None else httpx.Headers()


class InvalidRequest(APIError):  # 400, 415
    code = "invalid_request"

    @property
    def details(self) -> list[dict[str, str]]:
        return self.body.get("details") or []


class Unauthorized(APIError):  # 401
    code = "unauthorized"


class PaymentRequired(APIError):  # 402
    code = "payment_required"


class InsufficientCredits(PaymentRequired):
    """The balance is below the job's cost: `required`, `credits` and `topup` say how much and where to add."""

    code = "insufficient_credits"

    @property
    def required(self) -> Any:
        return self.body.get("required")

    @property
    def credits(self) -> Any:
        return self.body.get("credits")

    @property
    def topup(self) -> dict[str, Any]:
        return self.body.get("topup") or {}


class OverMaxCost(PaymentRequired):
    code = "over_max_cost"


class PaymentMethodRequired(PaymentRequired):
    code = "payment_method_required"


class PaymentFailed(PaymentRequired):
    code = "payment_failed"


class AuthenticationRequired(PaymentRequired):
    """The bank wants the card holder: send them to `action_url`."""

    code = "authentication_required"

    @property
    def action_url(self) -> str | None:
        return self.body.get("action_url")


class Forbidden(APIError):  # 403
    code = "forbidden"


class QuotaExceeded(Forbidden):
    code = "quota_exceeded"


class KeyExpired(Unauthorized):
    code = "key_expired"


class InsufficientScope(Forbidden):
    """The key lacks the scope (`generate`, `billing`, `keys`) this call needs."""

    code = "insufficient_scope"

    @property
    def scope(self) -> str | None:
        return self.body.get("scope")


class IpNotAllowed(Forbidden):
    code = "ip_not_allowed"


class ForbiddenModel(Forbidden):
    code = "forbidden_model"


class KeyEscalation(Forbidden):
    """A key asked for a key (or a change) beyond its own scopes or limits; `field` names which."""

    code = "key_escalation"

    @property
    def field(self) -> str | None:
        return self.body.get("field")


class KeyLimitReached(Forbidden):
    """A key's spend limit (403; `limit` is day, month or total) or concurrency limit (429, with `retry_after`)."""

    code = "key_limit_reached"

    @property
    def limit(self) -> str | None:
        return self.body.get("limit")

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers)


class NotFound(APIError):  # 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(APIError):  # 409
    code = "conflict"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"


class JobNotCancelable(Conflict):
    code = "job_not_cancelable"


class Unprocessable(APIError):  # 422
    code = "unprocessable"


class InvalidInput(Unprocessable):
    code = "invalid_input"

    @property
    def details(self) -> list[dict[str, str]]:
        return self.body.get("details") or []


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


class RateLimited(APIError):  # 429
    code = "rate_limited"

    @property
    def retry_after(self) -> float | None:
        return retry_after_seconds(self.headers)


class ServerError(APIError):  # 5xx
    code = "server_error"


class PaymentProviderError(ServerError):  # 502
    code = "payment_provider_error"


class ModelUnavailable(ServerError):  # 503
    code = "model_unavailable"


class BillingDisabled(ServerError):  # 503
    code = "billing_disabled"


_BY_CODE: dict[str, type[APIError]] = {
    cls.code: cls
    for cls in (
        InsufficientCredits,
        OverMaxCost,
        PaymentMethodRequired,
        PaymentFailed,
        AuthenticationRequired,
        QuotaExceeded,
        KeyExpired,
        InsufficientScope,
        IpNotAllowed,
        ForbiddenModel,
        KeyEscalation,
        KeyLimitReached,
        ModelNotFound,
        IdempotencyInProgress,
        JobNotCancelable,
        InvalidInput,
        IdempotencyKeyReused,
        RateLimited,
        PaymentProviderError,
        ModelUnavailable,
        BillingDisabled,
        InvalidRequest,
        Unauthorized,
        Forbidden,
        NotFound,
    )
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    415: InvalidRequest,
    422: Unprocessable,
    429: RateLimited,
}


def error_for(response: httpx.Response, body: Any) -> APIError:
    """The exception for an error response: by its `error` code, else by its status."""
    code = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None
    message = body.get("message") if isinstance(body, dict) and body.get("message") else None
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = ServerError if response.status_code >= 500 else APIError
    text = message or (response.text[:200] if response.text else response.reason_phrase)
    return cls(text, code=code, status=response.status_code, body=body, headers=response.headers)


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After", "")
    return float(value) if value.strip().isdigit() else None
