from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.exceptions import ApiError
from apps.api.serializers import body_validate, error_responses
from apps.generations.models import Job
from apps.showroom.models import Publication
from apps.showroom.services import (
    TITLE_MAX,
    NotPublishable,
    PublicationNotFound,
    publication_publish,
    publication_remix,
    publication_unpublish,
)


@extend_schema_serializer(component_name="Publication")
class PublicationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.SerializerMethodField(help_text="The publication's page in the showroom.")
    job_id = serializers.CharField()
    title = serializers.CharField()
    show_prompt = serializers.BooleanField()
    published = serializers.BooleanField(source="is_published")
    hidden = serializers.BooleanField(source="is_hidden", help_text="Hidden by a moderator: only you see it.")
    featured = serializers.BooleanField(source="is_featured")
    like_count = serializers.IntegerField()
    remix_url = serializers.SerializerMethodField(help_text="Opens the playground prefilled with this input.")

    def get_url(self, publication) -> str:
        return self.context["request"].build_absolute_uri(publication.get_absolute_url())

    def get_remix_url(self, publication) -> str:
        return self.context["request"].build_absolute_uri(publication.remix_path)


def _own_job(request, job_id: str) -> Job:
    job = Job.objects.for_user(request.user).visible().select_related("model").filter(pk=job_id).first()
    if job is None:
        raise ApiError(404, "not_found", f"No job {job_id!r} on this account.")
    return job


class PublicationPublishApi(APIView):
    """Publishes one of the caller's completed jobs to the showroom (again: updates title and show_prompt)."""

    @extend_schema_serializer(component_name="ShowroomPublish")
    class InputSerializer(serializers.Serializer):
        job_id = serializers.CharField()
        title = serializers.CharField(max_length=TITLE_MAX, required=False, default="", allow_blank=True)
        show_prompt = serializers.BooleanField(
            required=False, default=False, help_text="Show the prompt and other free text of the input to visitors."
        )

    @extend_schema_serializer(component_name="ShowroomPublishResponse")
    class OutputSerializer(PublicationSerializer):
        success = serializers.BooleanField(default=True)

    @extend_schema(
        operation_id="showroom_publish",
        summary="Publish a completed job to the showroom",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 404, 409)},
        description="Only the owner of a completed job can publish it. Publishing twice updates the publication.",
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        job = _own_job(request, data["job_id"])
        try:
            publication = publication_publish(job=job, title=data["title"], show_prompt=data["show_prompt"])
        except NotPublishable as exc:
            raise ApiError(409, "not_publishable", str(exc)) from exc
        body = self.OutputSerializer(publication, context={"request": request}).data
        return Response({"success": True, **body}, status=status.HTTP_200_OK)


class PublicationUnpublishApi(APIView):
    @extend_schema_serializer(component_name="ShowroomUnpublish")
    class InputSerializer(serializers.Serializer):
        job_id = serializers.CharField()

    @extend_schema(
        operation_id="showroom_unpublish",
        summary="Take a job out of the showroom",
        request=InputSerializer,
        responses={200: PublicationPublishApi.OutputSerializer, **error_responses(400, 401, 404)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        job = _own_job(request, data["job_id"])
        publication = Publication.objects.owned_by(request.user).select_related("model").filter(job=job).first()
        if publication is None:
            raise ApiError(404, "not_found", f"Job {job.pk!r} is not published.")
        publication = publication_unpublish(publication=publication)
        body = PublicationPublishApi.OutputSerializer(publication, context={"request": request}).data
        return Response({"success": True, **body})


class PublicationRemixApi(APIView):
    """The model and input to prefill the playground with, for a publication the caller may see."""

    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="ShowroomRemixResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        id = serializers.IntegerField()
        model = serializers.CharField(help_text="The model's public id.")
        input = serializers.DictField(
            help_text="The input to prefill. Without the prompt and other free text when the owner hid them."
        )

    @extend_schema(
        operation_id="showroom_remix",
        summary="The input of a showroom publication, to remix it",
        parameters=[OpenApiParameter("id", int, required=True, description="The publication's id.")],
        responses={200: OutputSerializer, **error_responses(400, 404)},
        auth=[],
    )
    def get(self, request):
        publication_id = request.query_params.get("id", "")
        if not publication_id:
            raise ApiError(400, "invalid_request", "Give the publication's id as ?id=.")
        try:
            remix = publication_remix(viewer=request.user, publication_id=publication_id)
        except PublicationNotFound as exc:
            raise ApiError(404, "not_found", f"No showroom publication {publication_id!r}.") from exc
        body = {"success": True, "id": remix.publication.pk, "model": remix.public_model, "input": remix.input}
        return Response(self.OutputSerializer(body).data)
