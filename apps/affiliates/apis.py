from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.affiliates.models import Commission
from apps.affiliates.services import (
    AffiliateError,
    affiliate_summary,
    commission_convert,
    payout_request,
)
from apps.api.exceptions import ApiError
from apps.api.serializers import CreditsField, body_validate, error_responses


def referral_link(request, code: str) -> str:
    return request.build_absolute_uri(f"/?ref={code}")


@extend_schema_serializer(component_name="Commission")
class CommissionSerializer(serializers.Serializer):
    payment_reference = serializers.CharField()
    amount = CreditsField(source="amount_micro")
    base = CreditsField(source="base_micro", help_text="Net credits the referred account bought.")
    rate_percent = serializers.DecimalField(max_digits=5, decimal_places=2, coerce_to_string=False)
    status = serializers.ChoiceField(choices=Commission.Status.choices)
    available_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


class AffiliateApi(APIView):
    @extend_schema_serializer(component_name="AffiliateResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        code = serializers.CharField()
        link = serializers.URLField()
        terms = serializers.DictField()
        clicks = serializers.IntegerField()
        signups = serializers.IntegerField()
        paying_referrals = serializers.IntegerField()
        pending = CreditsField(source="pending_micro")
        available = CreditsField(source="available_micro")
        requested = CreditsField(source="requested_micro")
        paid = CreditsField(source="paid_micro")
        converted = CreditsField(source="converted_micro")
        commissions = CommissionSerializer(many=True)

    @extend_schema(
        operation_id="affiliate",
        summary="Your referral link, its figures and your commissions",
        responses={200: OutputSerializer, **error_responses(401)},
    )
    def get(self, request):
        summary = affiliate_summary(user=request.user)
        commissions = Commission.objects.filter(affiliate__user=request.user)[:100]
        body = {
            **summary.__dict__,
            "link": referral_link(request, summary.code),
            "terms": affiliate_terms(),
            "commissions": commissions,
        }
        return Response(self.OutputSerializer(body).data)


class AffiliateConvertApi(APIView):
    @extend_schema_serializer(component_name="AffiliateConvert")
    class InputSerializer(serializers.Serializer):
        credits = CreditsField(help_text="Available commission to turn into spendable credits.")

    @extend_schema(
        operation_id="affiliate_convert",
        summary="Convert available commission into credits, at once",
        request=InputSerializer,
        responses={200: AffiliateApi.OutputSerializer, **error_responses(400, 401, 409)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        try:
            commission_convert(user=request.user, amount_micro=data["credits"])
        except AffiliateError as exc:
            raise ApiError(409, "insufficient_commission", str(exc)) from exc
        return AffiliateApi().get(request)


class AffiliatePayoutApi(APIView):
    @extend_schema_serializer(component_name="AffiliatePayout")
    class InputSerializer(serializers.Serializer):
        credits = CreditsField()
        method = serializers.CharField(max_length=300, help_text="Where to pay, e.g. 'PayPal: you@example.com'.")

    @extend_schema(
        operation_id="affiliate_payout",
        summary="Request a cash payout of available commission",
        request=InputSerializer,
        responses={200: AffiliateApi.OutputSerializer, **error_responses(400, 401, 409)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        try:
            payout_request(user=request.user, amount_micro=data["credits"], method=data["method"])
        except AffiliateError as exc:
            raise ApiError(409, "payout_refused", str(exc)) from exc
        return AffiliateApi().get(request)


def affiliate_terms() -> dict:
    return {
        "commission_percent": float(settings.AFFILIATE_COMMISSION_PERCENT),
        "commission_months": settings.AFFILIATE_COMMISSION_MONTHS,
        "cookie_days": settings.AFFILIATE_COOKIE_DAYS,
        "hold_days": settings.AFFILIATE_HOLD_DAYS,
        "payout_minimum": float(settings.AFFILIATE_PAYOUT_MIN_CREDITS),
    }
