from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.exceptions import ApiError
from apps.api.idempotency import idempotent
from apps.api.serializers import CreditsField, error_responses
from apps.billing.services import wallet_get
from apps.catalog.services import model_resolve
from apps.generations.models import Job, Output
from apps.generations.services import job_cancel, job_create
from kiwiwhale.lib.keyset import InvalidCursor, keyset_page, page_url
from kiwiwhale.lib.ratelimit import CounterThrottle


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

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, output) -> str | None:
        if not output.file:
            return None
        url = output.file.url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None and url.startswith("/") else url

    def to_representation(self, output):
        data = super().to_representation(output)
        if output.type == Output.Type.TEXT:
            data["text"] = output.text
        if output.type == Output.Type.JSON:
            data["data"] = output.data
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
    error = JobErrorField()


class GenerateThrottle(CounterThrottle):
    scope = "generate"
    rate_setting = "RATE_GENERATE_ACCOUNT"

    def ident(self, request) -> str:
        return f"user:{request.user.pk}"  # throttles run after authentication: always an account


class GenerateApi(APIView):
    throttle_classes = [GenerateThrottle]

    @extend_schema_serializer(component_name="Generate")
    class InputSerializer(serializers.Serializer):
        model = serializers.CharField(required=False, help_text="The model's public id; `public_model` is an alias.")
        public_model = serializers.CharField(required=False)
        input = serializers.DictField(required=False, help_text="Validated against the model's `schema`.")
        webhook_url = serializers.URLField(required=False, default="", max_length=2000)

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

    @extend_schema_serializer(component_name="GenerateResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        job_id = serializers.CharField()
        status = serializers.CharField()
        public_model = serializers.CharField()
        cost_credits = CreditsField()
        credits = CreditsField(help_text="The balance after the cost was taken.")
        poll_url = serializers.CharField()

    @extend_schema(
        operation_id="generate",
        summary="Submit a generation job",
        request=InputSerializer,
        responses={202: OutputSerializer, **error_responses(400, 401, 402, 403, 404, 409, 422, 429, 503)},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    def post(self, request):
        return idempotent(request, scope="generate", run=lambda: self._generate(request))

    def _generate(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        model = model_resolve(data["model"])
        job = job_create(
            user=request.user,
            model=model,
            input=data.get("input") or {},
            api_key=request.auth if hasattr(request.auth, "key_hash") else None,
            webhook_url=data["webhook_url"],
        )
        body = {
            "job_id": job.pk,
            "status": job.status,
            "public_model": model.public_model,
            "cost_credits": job.cost_micro,
            "credits": wallet_get(user=request.user).balance_micro,
            "poll_url": f"/api/v1/jobs.php?job_id={job.pk}",
        }
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


JOB_PAGE_SIZE = 20
JOB_PAGE_SIZE_MAX = 100


class JobApi(APIView):
    """One job (`?job_id=`), or the caller's jobs, newest first."""

    @extend_schema_serializer(component_name="JobResponse")
    class OutputSerializer(JobSerializer):
        success = serializers.BooleanField(default=True)

    @extend_schema_serializer(component_name="JobListResponse")
    class ListOutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        jobs = JobSerializer(many=True)
        next = serializers.URLField(allow_null=True)

    @extend_schema(
        operation_id="jobs",
        summary="Poll a job, or list the caller's jobs",
        parameters=[
            OpenApiParameter("job_id", str, required=False, description="Omit to list your jobs."),
            OpenApiParameter("status", str, enum=Job.Status.values, required=False),
            OpenApiParameter("limit", int, required=False),
            OpenApiParameter("cursor", str, required=False),
        ],
        responses={
            200: PolymorphicProxySerializer(
                component_name="JobOrJobList",
                serializers=[OutputSerializer, ListOutputSerializer],
                resource_type_field_name=None,
            ),
            **error_responses(400, 401, 404),
        },
        description="With `job_id`: that job (a `JobResponse`). Without: a `JobListResponse`, newest first.",
    )
    def get(self, request, job_id: str | None = None):
        job_id = job_id or request.query_params.get("job_id")
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
        summary="Cancel a queued job and return its credits",
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
            raise ApiError(409, "job_not_cancelable", f"The job is {job.status}; only queued jobs can be canceled.")
        job = Job.objects.with_outputs().get(pk=job.pk)
        return Response(JobApi.OutputSerializer(job, context={"request": request}).data)
