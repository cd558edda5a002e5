"""Pieces every API view shares: the credits field and strict body validation."""

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from apps.billing import money


class CreditsField(serializers.Field):
    """Micro-credits inside, a JSON number of credits outside (0.3165). An amount given to the API is between
    `min_credits` (0) and `max_credits` (money.MAX_CREDITS) credits, shown as `minimum` and `maximum` in the
    request schemas of the OpenAPI document (responses have no bounds: a balance may be negative)."""

    def __init__(self, *, min_credits: int = 0, max_credits: int = money.MAX_CREDITS, **kwargs):
        super().__init__(**kwargs)
        self.min_credits = min_credits
        self.max_credits = max_credits
        self.validators = [*self.validators, self._check_range]

    def _check_range(self, micro: int) -> None:
        if micro < self.min_credits * money.MICRO:
            raise serializers.ValidationError(f"Ensure this amount is at least {self.min_credits} credits.")
        if micro > self.max_credits * money.MICRO:
            raise serializers.ValidationError(f"Ensure this amount is at most {self.max_credits:,} credits.")

    def to_representation(self, value):
        return money.micro_to_json(value)

    def to_internal_value(self, data):
        try:
            return money.credits_to_micro(data)
        except money.InvalidAmount as exc:
            raise serializers.ValidationError(str(exc)) from exc


class CreditsFieldSchema(OpenApiSerializerFieldExtension):
    target_class = CreditsField

    def map_serializer_field(self, auto_schema, direction):
        schema = build_basic_type(OpenApiTypes.NUMBER)
        if direction == "request":
            schema.update(minimum=self.target.min_credits, maximum=self.target.max_credits)
        return schema


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


class ErrorDetailSerializer(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()


class CreditWaySerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=["GET", "POST"])
    url = serializers.URLField(help_text="Absolute.")
    description = serializers.CharField()


@extend_schema_serializer(component_name="TopupHints")
class TopupHintsSerializer(serializers.Serializer):
    """Where credits come from on this instance right now (card top-ups only when Stripe is configured)."""

    ways = CreditWaySerializer(many=True)
    billing_url = serializers.URLField(help_text="The billing page (absolute), for the account's human.")
    endpoint = serializers.URLField(required=False, help_text="Card top-up endpoint (absolute), when billing is on.")
    setup_endpoint = serializers.URLField(
        required=False, help_text="Card setup endpoint (absolute), when billing is on."
    )


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """Every error: `{"success": false, "error": "<code>", "message": "…"}`, plus detail fields for some codes."""

    success = serializers.BooleanField(default=False)
    error = serializers.CharField(help_text="A stable code, e.g. insufficient_credits, invalid_input.")
    message = serializers.CharField(help_text="A sentence for a human.")
    details = ErrorDetailSerializer(many=True, required=False, help_text="invalid_input / invalid_request: per field.")
    required = serializers.FloatField(required=False, help_text="insufficient_credits, over_max_cost: the cost.")
    credits = serializers.FloatField(required=False, help_text="insufficient_credits: the balance.")
    max_cost_credits = serializers.FloatField(required=False, help_text="over_max_cost: the cap that was given.")
    topup = TopupHintsSerializer(required=False, help_text="Every 402 about credits: the ways to get them here.")
    action_url = serializers.URLField(required=False, help_text="authentication_required: where to finish.")
    payment_id = serializers.IntegerField(required=False)
    decline_code = serializers.CharField(required=False)


def error_responses(*statuses: int) -> dict:
    """OpenAPI responses for the contract errors an operation can answer (401 on every authenticated one)."""
    return {status: ErrorSerializer for status in statuses}
