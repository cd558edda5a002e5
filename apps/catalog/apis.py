from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.exceptions import ApiError
from apps.api.serializers import CreditsField, error_responses
from apps.catalog.models import Category
from apps.generations.providers import models_servable


@extend_schema_serializer(component_name="Model")
class ModelSerializer(serializers.Serializer):
    product_id = serializers.CharField()
    label = serializers.CharField()
    public_model = serializers.CharField()
    category = serializers.ChoiceField(choices=Category.choices)
    cost_credits = CreditsField(source="base_cost_micro", help_text="The cost of a run with the default input.")
    description = serializers.CharField()
    schema = serializers.JSONField(source="input_schema", help_text="JSON Schema (2020-12) of generate's input.")


class ModelListApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="ModelsResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        count = serializers.IntegerField()
        models = ModelSerializer(many=True)

    @extend_schema(
        operation_id="models",
        summary="The models this instance can serve now",
        parameters=[OpenApiParameter("category", str, enum=Category.values, required=False)],
        responses={200: OutputSerializer, **error_responses(400)},
        auth=[],
    )
    def get(self, request):
        models = models_servable()
        category = request.query_params.get("category")
        if category:
            if category not in Category.values:
                raise ApiError(
                    400,
                    "invalid_request",
                    f"Unknown category {category!r}; one of: {', '.join(Category.values)}.",
                )
            models = models.filter(category=category)
        models = list(models)
        return Response(self.OutputSerializer({"success": True, "count": len(models), "models": models}).data)
