"""OpenAI's error shape, `{"error": {"message", "type", "code", "param"}}`, from our contract's errors.

The status stays the contract's (402 for credits, 429 with Retry-After, 404 model_not_found…), except that an input
the model's schema refuses (422 invalid_input) is a 400, as OpenAI answers a bad parameter. Extra fields of the
contract error (`required`, `credits`, `topup`, `details`) are kept inside the error object.
"""

from django.http import JsonResponse

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
# Contract codes that OpenAI's clients know under another name.
CODES = {"unauthorized": "invalid_api_key", "rate_limited": "rate_limit_exceeded"}
# Why a job failed → the status its answer carries: the caller's input, or the engine.
JOB_FAILURE_STATUS = {"content_policy": 400, "invalid_input": 400, "timeout": 504}


class OpenAIError(Exception):
    def __init__(self, status: int, code: str, message: str, *, param=None, headers=None, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict:
        error_type = TYPES.get(self.status, "api_error" if self.status >= 500 else "invalid_request_error")
        return {
            "error": {
                "message": self.message,
                "type": error_type,
                "param": self.param,
                "code": CODES.get(self.code, self.code),
                **self.extra,
            }
        }

    def response(self) -> JsonResponse:
        response = JsonResponse(self.body(), status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response


def error_from_api(status: int, body: dict, headers) -> OpenAIError:
    """An /api/v1 error answer, as OpenAI would give it."""
    code = body.get("error") or "api_error"
    extra = {name: value for name, value in body.items() if name not in ("success", "error", "message")}
    param = None
    details = extra.get("details")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        param = details[0].get("field")
    if code == "invalid_input":
        status = 400
        first = details[0] if param else None
        message = f"{body.get('message', '')} {first['field']}: {first['message']}" if first else body.get("message")
    else:
        message = body.get("message") or "The request failed."
    kept = {name: headers[name] for name in ("Retry-After",) if name in headers}
    return OpenAIError(status, code, message, param=param, headers=kept, **extra)


def error_from_job(job) -> OpenAIError:
    code = job.error_code or "job_failed"
    if job.status == "canceled":
        return OpenAIError(409, "job_canceled", f"Job {job.pk} was canceled; its credits were returned.", job_id=job.pk)
    status = JOB_FAILURE_STATUS.get(code, 502)
    return OpenAIError(
        status,
        code,
        f"{job.error_message or 'The job failed.'} (job {job.pk}; its credits were returned)",
        job_id=job.pk,
    )
