"""Pieces every API view shares: the credits field and strict body validation."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.billing import money


@extend_schema_field(OpenApiTypes.NUMBER)
class CreditsField(serializers.Field):
    """Micro-credits inside, a JSON number of credits outside (0.3165)."""

    def to_representation(self, value):
        return money.micro_to_json(value)

    def to_internal_value(self, data):
        try:
            return money.credits_to_micro(data)
        except money.InvalidAmount as exc:
            raise serializers.ValidationError(str(exc)) from exc


def body_validate(serializer_class, data) -> dict:
    """The body as `serializer_class` validates it; unknown top-level fields are errors, not silently dropped."""
    if not isinstance(data, dict):
        raise serializers.ValidationError({"body": ["The body must be a JSON object."]})
    unknown = sorted(set(data) - set(serializer_class().fields))
    if unknown:
        raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
