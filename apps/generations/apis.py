"""The job API: generate, quote, poll (and wait), list, cancel.

`generate.php` and `jobs.php` are served by async entry points (`generate_view`, `jobs_view`) around the DRF views:
the DRF view does the work in a thread as usual, then a wait (`Prefer: wait`, `?wait=`) is a coroutine on the
event loop (`job_wait`), so open waits cost sockets, not busy threads, and polls keep their latency.
"""

import re
from datetime import timedelta
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import ApiKeyAuthentication
from apps.accounts.services import KeyRefused, api_key_cache_names
from apps.api.exceptions import ApiError, key_refused_response
from apps.api.idempotency import idempotent
from apps.api.permissions import key_scope_check
from apps.api.serializers import CreditsField, error_responses
from apps.catalog.services import CATALOG_GENERATION_KEY, catalog_generation, model_resolve
from apps.generations.models import WEBHOOK_EVENTS, Job, Output
from apps.generations.providers import AVAILABLE_CACHE_KEY
from apps.generations.services import (
    job_answer_cache_names,
    job_answer_cached,
    job_answer_keep,
    job_cancel,
    job_create,
    job_quote,
)
from apps.generations.waits import MAX_WAIT_SECONDS, job_wait
from kiwiwhale.lib.internal_api import internal_options
from kiwiwhale.lib.keyset import InvalidCursor, keyset_page, page_url
from kiwiwhale.lib.ratelimit import CounterThrottle
from kiwiwhale.lib.redis_pool import cache_read_together, shared_cache_on

CANCEL_AFTER = re.compile(r"(?:(?P<h>\d{1,3})h)?(?:(?P<m>\d{1,4})m)?(?:(?P<s>\d{1,6})s)?")
CANCEL_AFTER_MAX = timedelta(hours=24)


def prefer_wait_seconds(header: str | None) -> int | None:
    """`Prefer: wait` → MAX_WAIT_SECONDS, `Prefer: wait=N` → N (at most MAX_WAIT_SECONDS); None when not asked.

    RFC 7240: preferences are comma-separated, with `;` parameters; one the server does not understand is ignored.
    """
    for preference in (header or "").split(","):
        name, _, value = preference.split(";")[0].strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        value = value.strip().strip('"')
        if not value:
            return MAX_WAIT_SECONDS
        if value.isdigit():
            return min(int(value), MAX_WAIT_SECONDS)
    return None


def cancel_after_parse(header: str | None) -> timedelta | None:
    """`Cancel-After: 30s | 5m | 1h30m` (Replicate's syntax) → the delay; None without the header."""
    if header is None:
        return None
    match = CANCEL_AFTER.fullmatch(header.strip().lower())
    if not header.strip() or match is None:
        raise ApiError(400, "invalid_request", "Cancel-After takes a duration such as 30s, 5m or 1h30m.")
    delay = timedelta(hours=int(match["h"] or 0), minutes=int(match["m"] or 0), seconds=int(match["s"] or 0))
    if not timedelta(seconds=1) <= delay <= CANCEL_AFTER_MAX:
        raise ApiError(400, "invalid_request", "Cancel-After must be between 1s and 24h.")
    return delay


def _url_absolute(request, url: str) -> str:
    # The storage's URL; a local one made absolute for the request's host.
    return request.build_absolute_uri(url) if request is not None and url.startswith("/") else url


@extend_schema_serializer(component_name="JobOutput")
class OutputSerializer(serializers.Serializer):
    url = serializers.SerializerMethodField()
    type = serializers.ChoiceField(choices=Output.Type.choices)
    content_type = serializers.CharField()
    file_name = serializers.CharField()
    file_size = serializers.IntegerField()
    width = serializers.IntegerField(allow_null=True)
    height = serializers.IntegerField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)

    text = serializers.CharField(required=False, help_text="Only on `text` outputs: the text itself.")
    data = serializers.JSONField(required=False, help_text="Only on `json` outputs: the JSON value itself.")

    @extend_schema_field(
        {
            "type": ["string", "null"],
            "format": "uri",
            "description": "Absolute, needs no auth. Null for a text or json output that has no file.",
        }
    )
    def get_url(self, output) -> str | None:
        if not output.file:
            return None
        return _url_absolute(self.context.get("request"), output.file.url)

    def to_representation(self, output):
        data = super().to_representation(output)
        if output.type != Output.Type.TEXT:
            data.pop("text", None)
        if output.type != Output.Type.JSON:
            data.pop("data", None)
        return data


@extend_schema_field(
    {"type": ["object", "null"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
)
class JobErrorField(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, job):
        return {"code": job.error_code, "message": job.error_message} if job.error_code else None


@extend_schema_serializer(component_name="Job")
class JobSerializer(serializers.Serializer):
    job_id = serializers.CharField(source="id")
    status = serializers.ChoiceField(choices=Job.Status.choices)
    public_model = serializers.CharField()
    category = serializers.CharField()
    cost_credits = CreditsField(source="cost_micro")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    outputs = OutputSerializer(many=True)
    error = JobErrorField(help_text="Set when the job failed, or was canceled by its Cancel-After deadline.")
    deadline_at = serializers.DateTimeField(allow_null=True, help_text="Cancel-After: canceled if not done by then.")


@extend_schema_serializer(component_name="JobResponse")
class JobResponseSerializer(JobSerializer):
    """A job as jobs.php answers it (and generate.php with `Prefer: wait` once the job ended)."""

    success = serializers.BooleanField(default=True)


class ModelInputSerializer(serializers.Serializer):
    """`{"model", "input"}`, as generate.php and quote.php take it (`public_model` is an alias of `model`)."""

    model = serializers.CharField(required=False, help_text="The model's public id; `public_model` is an alias.")
    public_model = serializers.CharField(required=False)
    input = serializers.DictField(
        required=False,
        help_text="Validated against the model's `schema` (defaults applied). When absent, the top-level fields "
        "that are not the request's own become the input.",
    )

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"body": ["The body must be a JSON object."]})
        if "input" not in data:
            # {"model": "z-image", "prompt": "a dog"}: the fields that are not ours are the input.
            ours = {name: value for name, value in data.items() if name in self.fields}
            data = {
                **ours,
                "input": {name: value for name, value in data.items() if name not in self.fields},
            }
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def validate(self, attrs):
        names = {attrs.get("model"), attrs.get("public_model")} - {None}
        if not names:
            raise serializers.ValidationError({"model": ["Give the model's id as `model`."]})
        if len(names) > 1:
            raise serializers.ValidationError({"model": ["`model` and `public_model` name different models."]})
        attrs["model"] = names.pop()
        return attrs


GENERATE_DESCRIPTION = """Validates `input`, takes the cost from the wallet and queues the job: 202 with `job_id` and
an absolute `poll_url`.

- `Prefer: wait` or `Prefer: wait=N` (N ≤ 60 seconds): the answer comes when the job ends, or after N seconds.
  Ended: 200 with the job as `jobs.php` shows it (outputs included). Still running: 202, as without the header.
  Either way the answer carries `Preference-Applied: wait=N`.
- `Cancel-After: 30s | 5m | 1h30m`: the job is canceled, every credit back, if it has not ended by then; its
  `error` is then `deadline_exceeded`.
- `max_cost_credits`: refuse (402 `over_max_cost`, nothing charged) a job that would cost more.
- `Idempotency-Key`: the same key and body within 24 h answers the first response and creates nothing."""


class GenerateThrottle(CounterThrottle):
    scope = "generate"
    rate_setting = "RATE_GENERATE_ACCOUNT"

    def ident(self, request) -> str:
        return f"user:{request.user.pk}"  # throttles run after authentication: always an account


def _webhook_url_callable(url: str) -> bool:
    # URLField also lets ftp:// and out-of-range ports through; credentials in a URL would be sent to anyone.
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.username is None and parts.password is None


class GenerateApi(APIView):
    throttle_classes = [GenerateThrottle]

    @extend_schema_serializer(component_name="Generate")
    class InputSerializer(ModelInputSerializer):
        webhook_url = serializers.URLField(
            required=False,
            default="",
            max_length=2000,
            help_text="An http(s) URL the server POSTs signed job events to (docs/agents.md#webhooks).",
        )
        webhook_events = serializers.ListField(
            child=serializers.ChoiceField(choices=WEBHOOK_EVENTS),
            required=False,
            allow_empty=False,
            max_length=len(WEBHOOK_EVENTS),
            help_text="Which events to send; default `completed`, `failed`, `canceled`. Needs `webhook_url`.",
        )
        max_cost_credits = CreditsField(
            required=False, help_text="Refuse (402 over_max_cost) a job that would cost more than this."
        )

        def validate(self, attrs):
            attrs = super().validate(attrs)
            url = attrs.get("webhook_url", "")
            if url and not _webhook_url_callable(url):
                raise serializers.ValidationError(
                    {"webhook_url": ["Give an http or https URL, without credentials, with a valid port."]}
                )
            if "webhook_events" in attrs:
                if not url:
                    raise serializers.ValidationError({"webhook_events": ["`webhook_events` needs a `webhook_url`."]})
                attrs["webhook_events"] = [event for event in WEBHOOK_EVENTS if event in attrs["webhook_events"]]
            return attrs

    @extend_schema_serializer(component_name="GenerateResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        job_id = serializers.CharField()
        status = serializers.CharField()
        public_model = serializers.CharField()
        cost_credits = CreditsField()
        credits = CreditsField(help_text="The balance after the cost was taken.")
        poll_url = serializers.URLField(help_text="Absolute: GET it until the status is terminal.")

    @extend_schema(
        operation_id="generate",
        summary="Submit a generation job",
        description=GENERATE_DESCRIPTION,
        request=InputSerializer,
        responses={
            200: OpenApiResponse(
                response=JobResponseSerializer, description="Prefer: wait, and the job ended within the wait."
            ),
            202: OutputSerializer,
            **error_responses(400, 401, 402, 403, 404, 409, 422, 429, 503),
        },
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter(
                "Prefer",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="`wait` or `wait=N` (N ≤ 60): answer when the job ends or after N seconds.",
            ),
            OpenApiParameter(
                "Cancel-After",
                str,
                OpenApiParameter.HEADER,
                required=False,
                description="`30s`, `5m`, `1h30m`: cancel (credits back) if not ended by then.",
            ),
        ],
    )
    def post(self, request):
        delay = cancel_after_parse(request.headers.get("Cancel-After"))
        return idempotent(request, scope="generate", run=lambda: self._generate(request, delay))

    def _generate(self, request, cancel_after: timedelta | None):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = model_resolve(data["model"])
        job = job_create(
            user=request.user,
            model=model,
            input=data.get("input") or {},
            api_key=request.auth if hasattr(request.auth, "key_hash") else None,
            webhook_url=data.get("webhook_url", ""),
            webhook_events=data.get("webhook_events"),
            max_cost_micro=data.get("max_cost_credits"),
            deadline_at=timezone.now() + cancel_after if cancel_after else None,
            stream_text=bool(internal_options(request).get("stream_text")),  # only the /v1 facade can ask
        )
        body = {
            "job_id": job.pk,
            "status": job.status,
            "public_model": model.public_model,
            "cost_credits": job.cost_micro,
            "credits": job.hold.balance_after_micro,
            "poll_url": request.build_absolute_uri(f"/api/v1/jobs.php?job_id={job.pk}"),
        }
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


JOB_PAGE_SIZE = 20
JOB_PAGE_SIZE_MAX = 100


class QuoteApi(APIView):
    """What generate.php would charge for this input, and the input as the job would run it. Public."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="Quote")
    class InputSerializer(ModelInputSerializer):
        pass

    @extend_schema_serializer(component_name="QuoteResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        public_model = serializers.CharField()
        cost_credits = CreditsField(help_text="Exactly what generate.php takes for this input.")
        input = serializers.JSONField(help_text="The validated input, the schema's defaults applied.")

    @extend_schema(
        operation_id="quote",
        summary="The exact cost of a job, before submitting it",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 404, 422)},
        auth=[],
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = model_resolve(serializer.validated_data["model"])
        validated, cost_micro = job_quote(model=model, input=serializer.validated_data.get("input") or {})
        body = {"public_model": model.public_model, "cost_credits": cost_micro, "input": validated}
        return Response(self.OutputSerializer(body).data)


class JobApi(APIView):
    """One job (`?job_id=`), or the caller's jobs, newest first."""

    OutputSerializer = JobResponseSerializer

    @extend_schema_serializer(component_name="JobListResponse")
    class ListOutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        jobs = JobSerializer(many=True)
        next = serializers.URLField(allow_null=True, help_text="The next page (absolute), or null on the last.")

    @extend_schema(
        operation_id="jobs",
        summary="Poll a job, or list the caller's jobs",
        parameters=[
            OpenApiParameter("job_id", str, required=False, description="Omit to list your jobs."),
            OpenApiParameter(
                "wait",
                int,
                required=False,
                description="With `job_id`: hold the answer until the job ends, at most this many seconds (≤ 60).",
            ),
            OpenApiParameter("status", str, enum=Job.Status.values, required=False, description="List filter."),
            OpenApiParameter("limit", int, required=False, description="List page size, 1 to 100 (default 20)."),
            OpenApiParameter("cursor", str, required=False, description="From `next`."),
        ],
        responses={
            200: PolymorphicProxySerializer(
                component_name="JobOrJobList",
                serializers=[OutputSerializer, ListOutputSerializer],
                resource_type_field_name=None,
            ),
            **error_responses(400, 401, 404),
        },
        description="With `job_id`: that job (a `JobResponse`); with `wait=N` too, the answer waits until the job "
        "ends or N seconds pass. Without `job_id`: a `JobListResponse`, newest first.",
    )
    def get(self, request, job_id: str | None = None):
        job_id = job_id or request.query_params.get("job_id")
        wait = request.query_params.get("wait")
        if wait is not None and (not wait.isdigit() or int(wait) > MAX_WAIT_SECONDS or not job_id):
            raise ApiError(400, "invalid_request", f"wait takes whole seconds, 0 to {MAX_WAIT_SECONDS}, with job_id.")
        if job_id:
            job = Job.objects.for_user(request.user).visible().with_outputs().filter(pk=job_id).first()
            if job is None:
                raise ApiError(404, "not_found", f"No job {job_id!r} on this account.")
            data = self.OutputSerializer(job, context={"request": request}).data
            return Response(data)  # `success` comes from the serializer
        jobs = Job.objects.for_user(request.user).visible().with_outputs()
        status_filter = request.query_params.get("status")
        if status_filter:
            if status_filter not in Job.Status.values:
                raise ApiError(400, "invalid_request", f"Unknown status; one of: {', '.join(Job.Status.values)}.")
            jobs = jobs.filter(status=status_filter)
        limit = request.query_params.get("limit", "")
        limit = min(int(limit), JOB_PAGE_SIZE_MAX) if limit.isdigit() and int(limit) > 0 else JOB_PAGE_SIZE
        try:
            # Keyset pagination on the (user, created_at) index: deep pages cost what the first does, no OFFSET.
            page, cursor = keyset_page(
                jobs, ordering=("-created_at", "-id"), cursor=request.query_params.get("cursor", ""), limit=limit
            )
        except InvalidCursor as exc:
            raise ApiError(400, "invalid_request", "cursor: use the `next` link of the previous page.") from exc
        jobs_data = JobSerializer(page, many=True, context={"request": request}).data
        return Response({"success": True, "jobs": jobs_data, "next": page_url(request, cursor=cursor)})


class JobCancelApi(APIView):
    @extend_schema_serializer(component_name="Cancel")
    class InputSerializer(serializers.Serializer):
        job_id = serializers.CharField()

    @extend_schema(
        operation_id="cancel",
        summary="Cancel a queued or processing job and return its credits",
        description="Any job not yet ended can be canceled; every credit comes back. An upstream provider running "
        "it is asked to stop where its API allows; work it already did is not charged to you.",
        request=InputSerializer,
        responses={200: JobApi.OutputSerializer, **error_responses(400, 401, 404, 409)},
    )
    def post(self, request, job_id: str | None = None):
        if job_id is None:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            job_id = serializer.validated_data["job_id"]
        job = Job.objects.for_user(request.user).select_related("hold").filter(pk=job_id).first()
        if job is None:
            raise ApiError(404, "not_found", f"No job {job_id!r} on this account.")
        if not job_cancel(job=job):
            job.refresh_from_db()
            raise ApiError(409, "job_not_cancelable", f"The job is {job.status}; only unfinished jobs can be canceled.")
        job = Job.objects.with_outputs().get(pk=job.pk)
        return Response(JobApi.OutputSerializer(job, context={"request": request}).data)


def _render(data, status_code: int, headers: dict) -> HttpResponse:
    return HttpResponse(
        JSONRenderer().render(data), status=status_code, content_type="application/json", headers=headers
    )


def _job_body(request, job_id: str) -> dict:
    job = Job.objects.with_outputs().get(pk=job_id)
    return JobApi.OutputSerializer(job, context={"request": request}).data


def _connection_close() -> None:
    # In the request's own thread, before a wait: a waiting request holds no database connection.
    connection.close()


_generate_drf = GenerateApi.as_view()


def _generate_sync(request):
    # The key, the catalog's token and the available providers, read in one round trip instead of three.
    try:
        raw_key = ApiKeyAuthentication.raw_key(request) or ""
    except exceptions.AuthenticationFailed:
        raw_key = ""  # the view refuses it, as without this
    with cache_read_together([*api_key_cache_names(raw_key), CATALOG_GENERATION_KEY, AVAILABLE_CACHE_KEY]):
        return _generate_drf(request)


_jobs_sync = JobApi.as_view()
_ACCEPT_PLAIN = ("", "*/*", "application/json")  # what DRF would answer as compact JSON (no `indent=`)


def _allow() -> str:
    view = JobApi()
    view.head = view.get  # as View.setup() does for each request
    return ", ".join(view.allowed_methods)


_DRF_HEADERS = {"Allow": _allow()}  # what APIView.finalize_response adds to JobApi's answers


def _poll_lean(request, job_id: str) -> HttpResponse | None:
    """The poll of one job with a bearer key, without DRF's dispatch (content negotiation, the Request wrapper,
    serializer fields rebuilt per request): the same bytes and headers as JobApi answers. None for anything else
    (no or a bad key, an unknown job, another Accept), which JobApi then answers, errors included.

    An ended job's answer comes from the cache (job_answer_cached); another job's costs one query: its outputs
    exist only once it completed (they are created in the transaction that completes it), so the answer of a
    queued or processing one, or of one that failed or was canceled, has none to fetch.
    """
    if request.method != "GET" or request.headers.get("Accept", "") not in _ACCEPT_PLAIN:
        return None
    try:
        raw_key = ApiKeyAuthentication.raw_key(request)
        if raw_key is None:
            return None
        # The key and the job's answer in one round trip to the cache.
        names = [*api_key_cache_names(raw_key), *job_answer_cache_names(job_id)]
        found = cache.get_many(names) if names else {}
        authenticated = ApiKeyAuthentication().authenticate(request, found=found)
        if authenticated is not None:
            key_scope_check(authenticated[1], JobApi.__name__)
    except exceptions.AuthenticationFailed:
        return None
    except KeyRefused as exc:  # answered here: a second authentication would count the request twice (rpm)
        refused = key_refused_response(exc)
        headers = {name: value for name, value in refused.items() if name.lower() != "content-type"}
        return _render(refused.data, refused.status_code, {**_DRF_HEADERS, **headers})
    if authenticated is None:
        return None
    request.user = authenticated[0]  # as DRF sets it, for the middleware after the view
    body, generation = job_answer_cached(job_id=job_id, user_id=request.user.pk, found=found)
    if body is None:
        body = _job_answer_read(Job.objects.for_user(request.user), job_id, generation)
        if body is None:
            return None
    if body["outputs"]:
        body = {**body, "outputs": [{**o, "url": _url_absolute(request, o["url"])} if o["url"] else o
                                    for o in body["outputs"]]}  # fmt: skip
    return _render(body, status.HTTP_200_OK, _DRF_HEADERS)


def _job_answer_read(jobs, job_id: str, generation: str | None) -> dict | None:
    """The answer of job `job_id` among `jobs` (None if it is not there) as the lean poll shows it, output URLs
    as stored (made absolute per request); an ended job's is kept in the cache."""
    job = jobs.visible().answer_fields().filter(pk=job_id).first()
    if job is None:
        return None
    if job.status != Job.Status.COMPLETED:
        job._prefetched_objects_cache = {"outputs": _no_outputs()}
    body = JobApi.OutputSerializer(job).data
    job_answer_keep(job=job, body=body, generation=generation)
    return body


def job_event_answer_keep(*, job, event: str) -> None:
    """A job event listener (services.JOB_EVENT_LISTENERS): once an ended job has committed, its answer goes to
    the cache, so the first poll after the end (the one every polling client makes) reads Redis as the later
    ones do, instead of the job and its outputs from the database. Robust: a failure here is logged, and the
    first poll builds the answer itself."""
    if event in Job.TERMINAL and shared_cache_on():
        job_id = job.pk
        transaction.on_commit(lambda: _job_answer_read(Job.objects.all(), job_id, catalog_generation()), robust=True)


def _no_outputs():
    """An empty, already evaluated queryset of outputs, as a prefetch leaves one: iterating `none()` would still
    compile its SQL (half a millisecond per poll) before finding it empty."""
    outputs = Output.objects.none()
    outputs._result_cache, outputs._prefetch_done = [], True
    return outputs


def _jobs_answer(request, job_id: str | None):
    job_id = job_id or request.GET.get("job_id")
    if job_id and "wait" not in request.GET:
        response = _poll_lean(request, job_id)
        if response is not None:
            return response
    return _jobs_sync(request, job_id=job_id)


@csrf_exempt
async def generate_view(request):
    """generate.php: the DRF view, then, with `Prefer: wait[=N]`, a wait on the event loop for the job's end."""
    wait = prefer_wait_seconds(request.headers.get("Prefer"))
    response = await sync_to_async(_generate_sync)(request)
    if wait is None:
        return response
    response["Preference-Applied"] = f"wait={wait}"
    if response.status_code != status.HTTP_202_ACCEPTED:
        return response
    job_id = response.data["job_id"]
    await sync_to_async(_connection_close)()
    ended = await job_wait(job_id, timeout=wait)
    if ended not in Job.TERMINAL:
        return response
    body = await sync_to_async(_job_body)(request, job_id)
    return _render(body, status.HTTP_200_OK, {"Preference-Applied": f"wait={wait}"})


async def jobs_view(request, job_id: str | None = None):
    """jobs.php: the DRF view (or its lean poll); with `job_id` and `wait=N`, waits for the job's end, then answers
    it as it is."""
    response = await sync_to_async(_jobs_answer)(request, job_id)
    wait = request.GET.get("wait", "")
    if response.status_code != status.HTTP_200_OK or not wait.isdigit() or int(wait) == 0:
        return response
    if response.data.get("status") in Job.TERMINAL:
        return response
    await sync_to_async(_connection_close)()
    await job_wait(response.data["job_id"], timeout=int(wait))
    return await sync_to_async(_jobs_sync)(request, job_id=job_id)


# drf-spectacular and the discovery documents find the operation through these, as on `as_view()` functions.
for _view, _cls in ((generate_view, GenerateApi), (jobs_view, JobApi)):
    _view.cls = _cls
    _view.initkwargs = {}
