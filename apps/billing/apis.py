from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.serializers import CreditsField, error_responses
from apps.billing.services import wallet_get


class CreditsApi(APIView):
    @extend_schema_serializer(component_name="CreditsResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        credits = CreditsField()
        account_type = serializers.ChoiceField(choices=["agent", "human"])

    @extend_schema(
        operation_id="credits",
        summary="The balance of the caller's wallet",
        responses={200: OutputSerializer, **error_responses(401)},
    )
    def get(self, request):
        body = {
            "credits": wallet_get(user=request.user).balance_micro,
            "account_type": request.user.account_type,
        }
        return Response(self.OutputSerializer(body).data)
