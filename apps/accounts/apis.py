from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.services import agent_register
from apps.api.serializers import CreditsField, body_validate, error_responses
from apps.billing.services import wallet_get
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
