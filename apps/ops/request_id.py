"""A request id on every log line: set by the web request (or taken from `X-Request-ID`), carried in the Celery
message headers of the tasks that the request enqueues, and set again in the worker while the task runs.

So the log lines of one generation — the submit in the web process, the run in the worker — share one id.
"""

import contextvars
import logging
import re
import uuid

from kiwiwhale.lib.middleware import InlineMiddlewareMixin

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_INCOMING = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")  # a proxy's id is kept only when it is harmless in logs
HEADER = "request_id"


def request_id_current() -> str:
    return request_id_var.get()


class RequestIdMiddleware(InlineMiddlewareMixin):
    """Sets the request id for the request's duration and returns it as `X-Request-ID`."""

    def process_request(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _INCOMING.match(incoming) else uuid.uuid4().hex
        request._request_id_token = request_id_var.set(request.request_id)

    def process_response(self, request, response):
        # Every exception below is a response by now (Django's convert_exception_to_response), so this runs.
        request_id_var.reset(request._request_id_token)
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` for the log format."""

    def filter(self, record):
        record.request_id = request_id_var.get()
        return True


def celery_connect() -> None:
    from celery import signals

    @signals.before_task_publish.connect(weak=False)
    def _publish(headers=None, **kwargs):
        current = request_id_var.get()
        if headers is not None and current != "-":
            headers.setdefault(HEADER, current)

    @signals.task_prerun.connect(weak=False)
    def _prerun(task=None, **kwargs):
        if task is None:
            return
        value = task.request.get(HEADER) or (task.request.headers or {}).get(HEADER)
        task.request._request_id_token = request_id_var.set(value or f"task-{task.request.id}")

    @signals.task_postrun.connect(weak=False)
    def _postrun(task=None, **kwargs):
        token = getattr(task.request, "_request_id_token", None) if task else None
        if token is not None:
            request_id_var.reset(token)
