import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    OpenApiWebhook,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.exceptions import ApiError
from apps.api.serializers import error_responses
from apps.generations.apis import JobApi
from apps.generations.models import Job
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import webhook_secret_get, webhook_secret_rotate

SIGNING = (
    "Each request carries the Standard Webhooks headers `webhook-id` (the same on every retry of one event: "
    "deduplicate on it), `webhook-timestamp` (Unix seconds of this try) and `webhook-signature` "
    "(`v1,<base64 HMAC-SHA256>` of `<id>.<timestamp>.<body>` under the secret of `webhook_secret.php`; during the "
    "day after a rotation, a second signature under the previous secret). "
    "`standardwebhooks.Webhook(secret).verify(body, headers)` checks them."
)


class WebhookSecretApi(APIView):
    @extend_schema_serializer(component_name="WebhookSecretResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        secret = serializers.CharField(help_text="`whsec_…`: verifies the signature of your job webhooks.")

    @extend_schema(
        operation_id="webhook_secret",
        summary="Get the account's webhook signing secret",
        description="Created on first use; the same until rotated. " + SIGNING,
        responses={200: OutputSerializer, **error_responses(401)},
    )
    def get(self, request):
        row = webhook_secret_get(user=request.user)
        return Response(self.OutputSerializer({"secret": row.secret}).data)

    @extend_schema(
        operation_id="webhook_secret_rotate",
        summary="Rotate the webhook signing secret",
        description=(
            "Answers the new secret. For a day (WEBHOOK_SECRET_GRACE_SECONDS) deliveries are signed with both the "
            "new and the previous secret, so a receiver can switch without missing any."
        ),
        request=None,
        responses={200: OutputSerializer, **error_responses(401)},
    )
    def post(self, request):
        row = webhook_secret_rotate(user=request.user)
        return Response(self.OutputSerializer({"secret": row.secret}).data)


@extend_schema_serializer(component_name="WebhookAttempt")
class AttemptSerializer(serializers.Serializer):
    attempt = serializers.IntegerField(source="number")
    started_at = serializers.DateTimeField()
    duration_ms = serializers.IntegerField()
    status_code = serializers.IntegerField(allow_null=True, help_text="null when no answer came.")
    error = serializers.CharField(help_text="Empty on a 2xx.")


@extend_schema_field(OpenApiTypes.OBJECT)
class BodyField(serializers.Field):
    def to_representation(self, value):
        return json.loads(value)


@extend_schema_serializer(component_name="WebhookDelivery")
class DeliverySerializer(serializers.Serializer):
    webhook_id = serializers.CharField(source="id", help_text="The `webhook-id` header of every try.")
    job_id = serializers.CharField()
    type = serializers.CharField(source="event")
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    payload = BodyField(source="body", help_text="The body sent (the same on every try).")
    history = AttemptSerializer(source="attempt_log", many=True)


class WebhookDeliveryListApi(APIView):
    """The deliveries of one job's webhook (`?job_id=`), or the account's newest 100."""

    class InputSerializer(serializers.Serializer):
        job_id = serializers.CharField(required=False, max_length=100)

    @extend_schema_serializer(component_name="WebhookDeliveryListResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        deliveries = DeliverySerializer(many=True)

    @extend_schema(
        operation_id="webhook_deliveries",
        summary="List webhook deliveries and their attempts",
        description=(
            "One delivery per event of a job; `status` is `pending` (tries under way or scheduled), `delivered` "
            "(a try got a 2xx) or `failed` (out of retries, or the URL is refused, e.g. a private address)."
        ),
        parameters=[OpenApiParameter("job_id", str, required=False, description="Omit for your newest 100.")],
        responses={200: OutputSerializer, **error_responses(400, 401, 404)},
    )
    def get(self, request):
        deliveries = WebhookDelivery.objects.for_user(request.user).prefetch_related("attempt_log")
        query = self.InputSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        job_id = query.validated_data.get("job_id")
        if job_id:
            if not Job.objects.for_user(request.user).filter(pk=job_id).exists():
                raise ApiError(404, "not_found", f"No job {job_id!r} on this account.")
            deliveries = deliveries.filter(job_id=job_id)
        return Response(self.OutputSerializer({"deliveries": deliveries[:100]}).data)


@extend_schema_serializer(component_name="JobWebhookEvent")
class JobEventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["job.started", "job.completed", "job.failed", "job.canceled"])
    timestamp = serializers.DateTimeField(help_text="When the event happened (the same on every retry).")
    data = JobApi.OutputSerializer(help_text="The job as `jobs.php` shows it at that moment.")


job_event_webhook = OpenApiWebhook(
    name="JobEvent",
    decorator=extend_schema(
        summary="A job started or ended (sent to the job's webhook_url)",
        description=(
            "POSTed to the `webhook_url` given on generate.php when one of its `webhook_events` happens (default: "
            "`completed`, `failed`, `canceled`). " + SIGNING + " Answer 2xx within 15 s; anything else, or no "
            "answer, is retried with growing waits (5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h), and the "
            "tries are listed by `webhook_deliveries.php`."
        ),
        request=JobEventSerializer,
        responses={200: OpenApiResponse(description="Received; any 2xx is a success.")},
    ),
)
