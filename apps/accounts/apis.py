from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import SCOPES, ApiKey
from apps.accounts.services import (
    agent_register,
    allowed_ips_clean,
    allowed_models_clean,
    api_key_create,
    api_key_find,
    api_key_manageable,
    api_key_revoke,
    api_key_rotate,
    api_key_update,
    scopes_clean,
)
from apps.api.exceptions import ApiError
from apps.api.serializers import CreditsField, body_validate, error_responses
from apps.billing.services import wallet_get
from apps.generations.key_limits import lineage_usage
from kiwiwhale.lib.ratelimit import CounterThrottle


class AgentRegisterThrottle(CounterThrottle):
    scope = "agent_register"  # per client IP
    rate_setting = "RATE_AGENT_REGISTER"


class AgentRegisterApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AgentRegisterThrottle]

    @extend_schema_serializer(component_name="AgentRegister")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, default="Agent", trim_whitespace=True)
        email = serializers.EmailField(required=False, default="")
        referral_code = serializers.CharField(max_length=64, required=False, default="")

    @extend_schema_serializer(component_name="AgentRegisterResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        account_type = serializers.CharField()
        user_id = serializers.IntegerField()
        api_key = serializers.CharField(help_text="Shown once; store it now.")
        credits = CreditsField()

    @extend_schema(
        operation_id="agent_register",
        summary="Create an agent account and its first API key",
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400, 429)},
        auth=[],
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        user, raw_key = agent_register(name=data["name"], email=data["email"], referral_code=data["referral_code"])
        body = {
            "success": True,
            "account_type": user.account_type,
            "user_id": user.pk,
            "api_key": raw_key,
            "credits": wallet_get(user=user).balance_micro,
        }
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


# --- Keys an agent manages (docs/auth.md#managing-keys) ----------------------------------------------------------


@extend_schema_serializer(component_name="KeySpend")
class KeySpendSerializer(serializers.Serializer):
    day = CreditsField(help_text="Today (UTC).")
    month = CreditsField(help_text="This calendar month (UTC).")
    total = CreditsField()
    active = serializers.IntegerField(help_text="Jobs queued or processing now.")


class KeyLimitsSerializer(serializers.Serializer):
    """The limits of a key; null (or leaving a field out on create) means no limit."""

    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=SCOPES),
        required=False,
        max_length=len(SCOPES),
        help_text="Any of generate, billing, keys (default: all, or the calling key's own; never more).",
    )
    spend_limit_day_credits = CreditsField(
        source="spend_limit_day_micro", required=False, allow_null=True, help_text="Per UTC day."
    )
    spend_limit_month_credits = CreditsField(
        source="spend_limit_month_micro", required=False, allow_null=True, help_text="Per UTC calendar month."
    )
    spend_limit_total_credits = CreditsField(
        source="spend_limit_total_micro", required=False, allow_null=True, help_text="Over the key's life."
    )
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        allow_null=True,
        max_length=100,
        help_text="Public model ids or `prefix/*`; empty or null: every model.",
    )
    allowed_ips = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        allow_null=True,
        max_length=100,
        help_text="CIDR ranges or addresses the key may be used from; empty or null: any.",
    )
    rpm_limit = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=1_000_000, help_text="Requests per minute."
    )
    concurrency_limit = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=10_000, help_text="Queued + processing jobs."
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True, help_text="After this, 401 key_expired.")

    def validate_scopes(self, value):
        return scopes_clean(value)

    def validate_allowed_models(self, value):
        try:
            return allowed_models_clean(value or [])
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_allowed_ips(self, value):
        try:
            return allowed_ips_clean(value or [])
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


@extend_schema_serializer(component_name="ApiKey")
class KeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The first characters of the key; the key itself is never shown again.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="Updated at most once a minute.")
    revoked_at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    active = serializers.BooleanField(help_text="Neither revoked nor expired.")
    parent_id = serializers.IntegerField(
        allow_null=True, help_text="The key that created this one (its limits bind this key too)."
    )
    scopes = serializers.ListField(child=serializers.CharField())
    spend_limit_day_credits = CreditsField(source="spend_limit_day_micro", allow_null=True)
    spend_limit_month_credits = CreditsField(source="spend_limit_month_micro", allow_null=True)
    spend_limit_total_credits = CreditsField(source="spend_limit_total_micro", allow_null=True)
    allowed_models = serializers.ListField(child=serializers.CharField())
    allowed_ips = serializers.ListField(child=serializers.CharField())
    rpm_limit = serializers.IntegerField(allow_null=True)
    concurrency_limit = serializers.IntegerField(allow_null=True)
    spend = KeySpendSerializer(help_text="Credits held or charged by this key and the keys it made (UTC periods).")


def keys_body(keys, *, now=None) -> list[dict]:
    keys = list(keys)
    usage = lineage_usage(lineages=[key.lineage for key in keys], now=now)
    return [KeySerializer(key_row(key, usage[key.lineage])).data for key in keys]


def key_row(key: ApiKey, used: dict) -> dict:
    ids = key.lineage_ids
    return {
        **{field: getattr(key, field) for field in KeySerializer().fields if hasattr(key, field)},
        "spend_limit_day_micro": key.spend_limit_day_micro,
        "spend_limit_month_micro": key.spend_limit_month_micro,
        "spend_limit_total_micro": key.spend_limit_total_micro,
        "active": key.is_active and not key.is_expired(),
        "parent_id": ids[-2] if len(ids) > 1 else None,
        "spend": used,
    }


def key_find(request, key_id) -> ApiKey:
    """A key the caller may manage, by id or prefix; 404 for any other (another account's keys do not exist)."""
    key = api_key_find(user=request.user, by=_calling_key(request), ident=key_id)
    if key is None:
        raise ApiError(404, "not_found", f"No key {str(key_id).strip()!r} you can manage.")
    return key


def _calling_key(request) -> ApiKey | None:
    return request.auth if isinstance(request.auth, ApiKey) else None


class KeyListApi(APIView):
    """The keys the caller may manage (GET), or a new key (POST), shown once."""

    @extend_schema_serializer(component_name="KeyListResponse")
    class ListOutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        keys = KeySerializer(many=True)

    @extend_schema_serializer(component_name="KeyCreate")
    class InputSerializer(KeyLimitsSerializer):
        name = serializers.CharField(max_length=100, required=False, default="default", trim_whitespace=True)

    @extend_schema_serializer(component_name="KeyCreateResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        api_key = serializers.CharField(help_text="Shown once; store it now.")
        key = KeySerializer()

    @extend_schema(
        operation_id="keys",
        summary="List your API keys with their limits and spend",
        responses={200: ListOutputSerializer, **error_responses(401, 403)},
    )
    def get(self, request):
        keys = api_key_manageable(user=request.user, by=_calling_key(request)).order_by("revoked_at", "-created_at")
        return Response({"success": True, "keys": keys_body(keys)})

    @extend_schema(
        operation_id="key_create",
        summary="Create an API key with limits and scopes (the key is shown once)",
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400, 401, 403, 409)},
    )
    def post(self, request):
        data = dict(body_validate(self.InputSerializer, request.data))
        name = data.pop("name") or "default"
        key, raw = api_key_create(user=request.user, name=name, by=_calling_key(request), **data)
        body = {"success": True, "api_key": raw, "key": keys_body([key])[0]}
        return Response(body, status=status.HTTP_201_CREATED)


class KeyTargetSerializer(serializers.Serializer):
    key_id = serializers.CharField(max_length=40, help_text="The key's id or prefix (kw_ and 8 characters).")


class KeyUpdateApi(APIView):
    @extend_schema_serializer(component_name="KeyUpdate")
    class InputSerializer(KeyTargetSerializer, KeyLimitsSerializer):
        name = serializers.CharField(max_length=100, required=False, trim_whitespace=True)

    @extend_schema_serializer(component_name="KeyResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        key = KeySerializer()

    @extend_schema(
        operation_id="key_update",
        summary="Change a key's name, limits, scopes or expiry (in effect at once)",
        description="Fields left out stay as they are; null clears a limit.",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request):
        data = dict(body_validate(self.InputSerializer, request.data))
        key = key_find(request, data.pop("key_id"))
        for field in ("allowed_models", "allowed_ips"):
            if field in data and data[field] is None:
                data[field] = []
        if data.get("scopes") is None:
            data.pop("scopes", None)
        key = api_key_update(key=key, by=_calling_key(request), **data)
        return Response({"success": True, "key": keys_body([key])[0]})


class KeyRevokeApi(APIView):
    @extend_schema_serializer(component_name="KeyRevoke")
    class InputSerializer(KeyTargetSerializer):
        pass

    @extend_schema(
        operation_id="key_revoke",
        summary="Revoke a key (and the keys it made), at once for every process",
        request=InputSerializer,
        responses={200: KeyUpdateApi.OutputSerializer, **error_responses(400, 401, 403, 404)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        key = key_find(request, data["key_id"])
        api_key_revoke(key=key)
        key.refresh_from_db()
        return Response({"success": True, "key": keys_body([key])[0]})


class KeyRotateApi(APIView):
    GRACE_MAX_SECONDS = 7 * 24 * 3600

    @extend_schema_serializer(component_name="KeyRotate")
    class InputSerializer(KeyTargetSerializer):
        grace_seconds = serializers.IntegerField(
            required=False,
            default=0,
            min_value=0,
            max_value=7 * 24 * 3600,
            help_text="Keep the old key working this long (0: revoke it now; at most 7 days).",
        )

    @extend_schema_serializer(component_name="KeyRotateResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        api_key = serializers.CharField(help_text="The new key, shown once.")
        key = KeySerializer()
        old_key = KeySerializer()

    @extend_schema(
        operation_id="key_rotate",
        summary="Replace a key with a new one with the same name, limits and scopes",
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400, 401, 403, 404, 409)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        key = key_find(request, data["key_id"])
        if not key.is_active or key.is_expired():
            raise ApiError(409, "key_not_active", "Only a key that is neither revoked nor expired can be rotated.")
        new_key, raw = api_key_rotate(key=key, grace_seconds=data["grace_seconds"])
        key.refresh_from_db()
        new_body, old_body = keys_body([new_key, key])
        return Response(
            {"success": True, "api_key": raw, "key": new_body, "old_key": old_body}, status=status.HTTP_201_CREATED
        )
