"""One place that turns exceptions into the contract's error shape: {"success": false, "error", "message", …}."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from apps.accounts.services import KeyRefused
from apps.billing import money, stripe_gateway
from apps.billing.services import (
    AuthenticationRequired,
    BillingError,
    BillingNotFound,
    IdempotencyKeyReused,
    InsufficientCredits,
    PaymentFailed,
    PaymentMethodRequired,
    RateLimited,
    RedemptionRefused,
)
from apps.catalog.services import InvalidInput, ModelNotFound, ModelUnavailable
from apps.generations.services import CostOverMax, QuotaExceeded


class ApiError(exceptions.APIException):
    """A contract error raised by API code: `raise ApiError(409, "idempotency_in_progress", "…")`."""

    def __init__(self, status_code: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.extra = extra


def error_body(code: str, message: str, **extra) -> dict:
    return {"success": False, "error": code, "message": message, **extra}


def error_response(status_code: int, code: str, message: str, headers=None, **extra) -> Response:
    return Response(error_body(code, message, **extra), status=status_code, headers=headers)


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, exc.message, **exc.extra)
    if isinstance(exc, KeyRefused):
        return key_refused_response(exc)
    if isinstance(exc, InsufficientCredits):
        return error_response(
            402,
            "insufficient_credits",
            str(exc),
            required=money.micro_to_json(exc.required_micro),
            credits=money.micro_to_json(exc.balance_micro),
            topup=topup_hints(request),
        )
    if isinstance(exc, CostOverMax):
        return error_response(
            402,
            "over_max_cost",
            f"This job costs {money.format_credits(exc.cost_micro)} credits, over max_cost_credits "
            f"({money.format_credits(exc.max_cost_micro)}); nothing was charged.",
            required=money.micro_to_json(exc.cost_micro),
            max_cost_credits=money.micro_to_json(exc.max_cost_micro),
        )
    if isinstance(exc, BillingError | stripe_gateway.BillingDisabled | stripe_gateway.GatewayError | RateLimited):
        return _billing_error(exc, request)
    if isinstance(exc, QuotaExceeded):
        if exc.retry_after_seconds:
            headers = {"Retry-After": str(exc.retry_after_seconds)}
            return error_response(429, "rate_limited", str(exc), headers=headers)
        return error_response(403, "quota_exceeded", str(exc))
    if isinstance(exc, InvalidInput):
        return error_response(422, "invalid_input", str(exc), details=exc.details)
    if isinstance(exc, ModelNotFound):
        return error_response(404, "model_not_found", f"There is no model {exc.args[0]!r}; see /api/v1/models.php.")
    if isinstance(exc, ModelUnavailable):
        return error_response(503, "model_unavailable", f"No provider can serve {exc.args[0]!r} right now.")
    if isinstance(exc, Http404 | exceptions.NotFound):
        return error_response(404, "not_found", "Not found.")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        message = (
            str(exc.detail)
            if isinstance(exc, exceptions.AuthenticationFailed)
            else ("Authentication required: send 'Authorization: Bearer kw_…'.")
        )
        return error_response(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="api"'})
    if isinstance(exc, PermissionDenied | exceptions.PermissionDenied):
        detail = getattr(exc, "detail", None) or "You are not allowed to do this."
        return error_response(403, "forbidden", str(detail))
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 1)
        return error_response(
            429, "rate_limited", f"Too many requests; retry in {wait} s.", headers={"Retry-After": str(wait)}
        )
    if isinstance(exc, exceptions.ParseError):
        return error_response(400, "invalid_request", f"Malformed JSON: {exc.detail}")
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return error_response(415, "invalid_request", "Send the body as application/json.")
    if isinstance(exc, exceptions.MethodNotAllowed):
        return error_response(405, "method_not_allowed", str(exc.detail))
    if isinstance(exc, exceptions.ValidationError):
        return error_response(400, "invalid_request", _first_message(exc.detail), details=_details(exc.detail))
    if isinstance(exc, exceptions.APIException):
        return error_response(exc.status_code, exc.default_code, str(exc.detail))
    return None


# Key rules carry no HTTP status either (apps/accounts/services.KeyRefused); their statuses of the contract.
KEY_STATUSES = {
    "key_expired": 401,
    "ip_not_allowed": 403,
    "insufficient_scope": 403,
    "forbidden_model": 403,
    "key_limit_reached": 403,  # a spend limit; concurrency answers 429 with Retry-After
    "key_escalation": 403,
    "too_many_keys": 409,
    "rate_limited": 429,
}


def key_refused_response(exc: KeyRefused) -> Response:
    status = 429 if exc.retry_after else KEY_STATUSES[exc.code]
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'}
    return error_response(status, exc.code, str(exc), headers=headers, **exc.extra)


def _billing_error(exc, request) -> Response:
    if isinstance(exc, stripe_gateway.BillingDisabled):
        return error_response(503, "billing_disabled", str(exc))
    if isinstance(exc, stripe_gateway.GatewayError):
        return error_response(502, "payment_provider_error", f"Stripe could not complete the request: {exc}")
    if isinstance(exc, RateLimited):
        return error_response(429, "rate_limited", str(exc), headers={"Retry-After": str(exc.wait_seconds)})
    extra = {}
    if isinstance(exc, AuthenticationRequired):
        extra["action_url"] = request.build_absolute_uri(exc.action_path) if request else exc.action_path
    if isinstance(exc, AuthenticationRequired | PaymentFailed) and exc.payment is not None:
        extra["payment_id"] = exc.payment.pk
    if isinstance(exc, PaymentFailed) and exc.decline_code:
        extra["decline_code"] = exc.decline_code
    status = _billing_status(exc)
    if status == 402:
        extra["topup"] = topup_hints(request)
    if exc.field and status == 400:
        extra["details"] = [{"field": exc.field, "message": str(exc)}]
    return error_response(status, exc.code, str(exc), **extra)


# Billing's domain errors carry no HTTP status: this is where each one gets its status of the contract.
BILLING_STATUSES = {
    PaymentMethodRequired: 402,
    PaymentFailed: 402,
    AuthenticationRequired: 402,
    BillingNotFound: 404,
    IdempotencyKeyReused: 422,
}
REDEMPTION_STATUSES = {"code_already_redeemed": 409, "code_expired": 410, "code_used_up": 410}


def _billing_status(exc: BillingError) -> int:
    if isinstance(exc, RedemptionRefused):
        return REDEMPTION_STATUSES.get(exc.code, 400)
    return next((status for kind, status in BILLING_STATUSES.items() if isinstance(exc, kind)), 400)


def topup_hints(request) -> dict:
    """The ways to get credits this instance offers now, each with its method and absolute URL.

    Card top-ups only when Stripe is configured; redemption codes and the billing page always."""
    base = settings.SITE_URL or (request.build_absolute_uri("/").rstrip("/") if request is not None else "")
    ways = []
    hints = {}
    if settings.STRIPE_ENABLED:
        hints["endpoint"] = f"{base}/api/v1/agent_topup.php"
        hints["setup_endpoint"] = f"{base}/api/v1/agent_setup_payment.php"
        ways += [
            {"method": "POST", "url": hints["endpoint"], "description": 'Charge the saved card: {"credits": 10}.'},
            {
                "method": "POST",
                "url": hints["setup_endpoint"],
                "description": "Save a card first (then agent_confirm_payment_method.php).",
            },
        ]
    ways += [
        {"method": "POST", "url": f"{base}/api/v1/redeem.php", "description": 'Redeem a code: {"code": "…"}.'},
        {"method": "GET", "url": f"{base}/billing.php", "description": "The billing page, for the account's human."},
    ]
    return {**hints, "billing_url": f"{base}/billing.php", "ways": ways}


def _details(detail, prefix="") -> list[dict]:
    if isinstance(detail, dict):
        return [
            item
            for key, value in detail.items()
            for item in _details(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
        ]
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"field": prefix or "body", "message": str(item)} for item in detail]
        return [item for index, value in enumerate(detail) for item in _details(value, f"{prefix}.{index}")]
    return [{"field": prefix or "body", "message": str(detail)}]


def _first_message(detail) -> str:
    details = _details(detail)
    if not details:
        return "Invalid request."
    first = details[0]
    return f"{first['field']}: {first['message']}" if first["field"] != "body" else first["message"]
