"""The billing API: balance, saving a card, top-ups, auto top-up, the low-balance notice, usage, codes."""

import csv

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.apis import KeySerializer, key_find, keys_body
from apps.api.exceptions import ApiError
from apps.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from apps.api.idempotency import idempotent
from apps.api.serializers import CreditsField, body_validate, error_responses
from apps.billing import money
from apps.billing.models import BillingEvent, BillingProfile, LedgerEntry, Payment, PaymentMethod
from apps.billing.services import (
    BillingNotFound,
    InvalidBillingRequest,
    autotopup_configure,
    billing_profile_get,
    code_redeem,
    low_balance_configure,
    payment_method_confirm,
    payment_method_remove,
    payment_setup_start,
    topup_amount_check,
    topup_charge,
    wallet_get,
)
from apps.generations.models import Job
from kiwiwhale.lib.ratelimit import client_ip

MONEY_SCHEMA = {"type": "object", "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}}}


@extend_schema_field(MONEY_SCHEMA)
class MoneyField(serializers.Field):
    """Cents inside, `{"amount": 10.61, "currency": "usd"}` outside; the source is (cents, currency)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        cents, currency = value
        return _money(cents, currency)


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


@extend_schema_serializer(component_name="SavedCard")
class CardSerializer(serializers.Serializer):
    id = serializers.CharField(source="stripe_payment_method_id", help_text="The Stripe PaymentMethod id.")
    brand = serializers.CharField()
    last4 = serializers.CharField()
    exp_month = serializers.IntegerField(allow_null=True)
    exp_year = serializers.IntegerField(allow_null=True)
    is_default = serializers.BooleanField()


class PaymentSetupApi(APIView):
    @extend_schema_serializer(component_name="SetupPaymentResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        setup_intent_id = serializers.CharField()
        client_secret = serializers.CharField()
        publishable_key = serializers.CharField()
        setup_url = serializers.URLField(help_text="A page where the card holder enters the card (Stripe Elements).")

    @extend_schema(
        operation_id="agent_setup_payment",
        summary="Start saving a card for off-session top-ups (a Stripe SetupIntent)",
        request=None,
        responses={200: OutputSerializer, **error_responses(401, 502, 503)},
    )
    def post(self, request):
        started = payment_setup_start(user=request.user)
        body = {**started.__dict__, "setup_url": request.build_absolute_uri(started.setup_path)}
        return Response(self.OutputSerializer(body).data)


class PaymentMethodConfirmApi(APIView):
    @extend_schema_serializer(component_name="ConfirmPaymentMethod")
    class InputSerializer(serializers.Serializer):
        setup_intent_id = serializers.CharField(required=False, allow_blank=False, max_length=255)
        payment_method_id = serializers.CharField(required=False, allow_blank=False, max_length=255)

        def validate(self, attrs):
            if bool(attrs.get("setup_intent_id")) == bool(attrs.get("payment_method_id")):
                raise serializers.ValidationError({"setup_intent_id": ["Give setup_intent_id or payment_method_id."]})
            return attrs

    @extend_schema_serializer(component_name="ConfirmPaymentMethodResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        payment_method = CardSerializer()

    @extend_schema(
        operation_id="agent_confirm_payment_method",
        summary="Check the saved card with Stripe and make it the account's default",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 402, 404, 502, 503)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        card = payment_method_confirm(
            user=request.user,
            setup_intent_id=data.get("setup_intent_id", ""),
            payment_method_id=data.get("payment_method_id", ""),
        )
        return Response(self.OutputSerializer({"payment_method": card}).data)


class PaymentMethodListApi(APIView):
    @extend_schema_serializer(component_name="PaymentMethodsResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        payment_methods = CardSerializer(many=True)

    @extend_schema(
        operation_id="payment_methods",
        summary="The saved cards (brand, last 4, expiry), the default first",
        responses={200: OutputSerializer, **error_responses(401)},
    )
    def get(self, request):
        cards = PaymentMethod.objects.filter(user=request.user)
        return Response(self.OutputSerializer({"payment_methods": cards}).data)


class PaymentMethodRemoveApi(APIView):
    @extend_schema_serializer(component_name="RemovePaymentMethod")
    class InputSerializer(serializers.Serializer):
        payment_method_id = serializers.CharField(max_length=255)

    @extend_schema(
        operation_id="payment_method_remove",
        summary="Remove a saved card (the next newest becomes the default; the last one switches auto top-up off)",
        request=InputSerializer,
        responses={200: PaymentMethodListApi.OutputSerializer, **error_responses(400, 401, 404, 502)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        card = PaymentMethod.objects.filter(
            user=request.user, stripe_payment_method_id=data["payment_method_id"]
        ).first()
        if card is None:
            raise BillingNotFound(f"No saved card {data['payment_method_id']!r} on this account.")
        payment_method_remove(user=request.user, payment_method=card)
        cards = PaymentMethod.objects.filter(user=request.user)
        return Response(PaymentMethodListApi.OutputSerializer({"payment_methods": cards}).data)


class TopupApi(APIView):
    @extend_schema_serializer(component_name="Topup")
    class InputSerializer(serializers.Serializer):
        credits = CreditsField(help_text="Credits the wallet receives; the card is charged these plus the fee.")

    @extend_schema_serializer(component_name="TopupResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        credits_added = CreditsField(source="credits_added_micro")
        credits = CreditsField(source="balance_micro", help_text="The balance after the top-up.")
        charged = MoneyField()
        fee = MoneyField(help_text="The card fee included in `charged`.")
        payment_intent_id = serializers.CharField()
        payment_id = serializers.IntegerField()
        status = serializers.ChoiceField(choices=Payment.Status.choices)

    @extend_schema_serializer(component_name="TopupQuote")
    class QuoteSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        credits = CreditsField(source="credits_micro")
        price = MoneyField()
        fee = MoneyField()
        charge = MoneyField()
        min_credits = CreditsField(source="min_micro")
        max_credits = CreditsField(source="max_micro")

    @extend_schema(
        operation_id="agent_topup_quote",
        summary="What a top-up of `credits` would charge (price + card fee), before paying",
        parameters=[
            OpenApiParameter("credits", {"type": "number", "minimum": 0, "maximum": money.MAX_CREDITS}, required=True)
        ],
        responses={200: QuoteSerializer, **error_responses(400, 401)},
    )
    def get(self, request):
        data = body_validate(self.InputSerializer, {"credits": request.query_params.get("credits", "")})
        topup_amount_check(data["credits"])
        quote = money.topup_quote(data["credits"])
        body = {
            "credits_micro": quote.credits_micro,
            "price": (quote.price_cents, quote.currency),
            "fee": (quote.fee_cents, quote.currency),
            "charge": (quote.charge_cents, quote.currency),
            "min_micro": money.setting_credits("TOPUP_MIN_CREDITS"),
            "max_micro": money.setting_credits("TOPUP_MAX_CREDITS"),
        }
        return Response(self.QuoteSerializer(body).data)

    @extend_schema(
        operation_id="agent_topup",
        summary="Charge the saved card off-session for credits (plus the card fee)",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 402, 409, 422, 502, 503)},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        request_key = request.headers.get(IDEMPOTENCY_HEADER)
        if request_key is not None and not (request_key.strip() and len(request_key) <= 255):
            # Refused before anything is charged (idempotent() would refuse it only after).
            raise ApiError(400, "invalid_request", f"The {IDEMPOTENCY_HEADER} header must be 1 to 255 characters.")
        # Charged first, outside any transaction: the Payment row is the request's idempotency record at Stripe
        # (its key comes from the Idempotency-Key), so a replay finds it and charges nothing. Only the answer
        # is then kept by idempotent(), for the replay to be the first response.
        payment = topup_charge(user=request.user, credits_micro=data["credits"], request_key=request_key or "")
        return idempotent(
            request,
            scope="agent_topup",
            run=lambda: Response(self.OutputSerializer(self._body(request, payment)).data),
        )

    @staticmethod
    def _body(request, payment: Payment) -> dict:
        succeeded = payment.status == Payment.Status.SUCCEEDED
        return {
            "credits_added_micro": payment.credits_micro if succeeded else 0,
            "balance_micro": wallet_get(user=request.user).balance_micro,
            "charged": (payment.amount_cents, payment.currency),
            "fee": (payment.fee_cents, payment.currency),
            "payment_intent_id": payment.stripe_payment_intent_id or "",
            "payment_id": payment.pk,
            "status": payment.status,
        }


@extend_schema_serializer(component_name="BillingEvent")
class BillingEventSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=BillingEvent.Kind.choices)
    message = serializers.CharField()
    payment_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class AutoTopupApi(APIView):
    @extend_schema_serializer(component_name="AutoTopup")
    class InputSerializer(serializers.Serializer):
        enabled = serializers.BooleanField()
        mode = serializers.ChoiceField(choices=BillingProfile.Mode.values, required=False, default="fixed")
        trigger_credits = CreditsField(required=False, help_text="Top up when the balance falls below this.")
        amount_credits = CreditsField(required=False, help_text="Fixed mode: credits added each time.")
        target_credits = CreditsField(required=False, help_text="Buffer mode: the balance to refill to.")
        daily_cap_credits = CreditsField(required=False, allow_null=True, help_text="Most bought per UTC day.")
        monthly_cap_credits = CreditsField(required=False, allow_null=True, help_text="Most bought per month.")

    @extend_schema_serializer(component_name="AutoTopupResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        enabled = serializers.BooleanField(source="autotopup_enabled")
        mode = serializers.CharField(source="autotopup_mode")
        trigger_credits = CreditsField(source="autotopup_trigger_micro")
        amount_credits = CreditsField(source="autotopup_amount_micro")
        target_credits = CreditsField(source="autotopup_target_micro")
        daily_cap_credits = CreditsField(source="daily_cap_micro")
        monthly_cap_credits = CreditsField(source="monthly_cap_micro")
        declines_in_a_row = serializers.IntegerField(source="autotopup_declines")
        disabled_reason = serializers.CharField(source="autotopup_disabled_reason")
        events = BillingEventSerializer(many=True, help_text="What auto top-up did lately, newest first.")

    @extend_schema(
        operation_id="agent_autotopup",
        summary="Read auto top-up (fixed or buffer) and its recent events",
        responses={200: OutputSerializer, **error_responses(401)},
    )
    def get(self, request):
        return Response(self.OutputSerializer(self._body(billing_profile_get(user=request.user))).data)

    @extend_schema(
        operation_id="agent_autotopup_set",
        summary="Switch auto top-up on (fixed or buffer mode) or off",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 402, 503)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        profile = autotopup_configure(
            user=request.user,
            enabled=data["enabled"],
            mode=data["mode"],
            trigger_micro=data.get("trigger_credits", 0),
            amount_micro=data.get("amount_credits"),
            target_micro=data.get("target_credits"),
            daily_cap_micro=data.get("daily_cap_credits"),
            monthly_cap_micro=data.get("monthly_cap_credits"),
        )
        return Response(self.OutputSerializer(self._body(profile)).data)

    @staticmethod
    def _body(profile: BillingProfile) -> BillingProfile:
        profile.daily_cap_micro = profile.autotopup_daily_cap_micro or money.setting_credits(
            "AUTOTOPUP_DAILY_CAP_CREDITS"
        )
        profile.monthly_cap_micro = profile.autotopup_monthly_cap_micro or money.setting_credits(
            "AUTOTOPUP_MONTHLY_CAP_CREDITS"
        )
        profile.events = BillingEvent.objects.filter(user_id=profile.user_id, kind__startswith="autotopup_").order_by(
            "-created_at", "-id"
        )[:20]
        return profile


class LowBalanceApi(APIView):
    @extend_schema_serializer(component_name="LowBalance")
    class InputSerializer(serializers.Serializer):
        threshold_credits = CreditsField(allow_null=True, help_text="null: no notice.")
        webhook_url = serializers.URLField(required=False, allow_blank=True, default="", max_length=2000)

    @extend_schema_serializer(component_name="LowBalanceResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        threshold_credits = CreditsField(allow_null=True, source="threshold_micro")
        webhook_url = serializers.CharField()
        notice_sent = serializers.BooleanField(help_text="Sent for the current crossing; re-armed by money in.")

    @extend_schema(
        operation_id="low_balance",
        summary="The low-balance notice: one email (and webhook) when the balance crosses below the threshold",
        responses={200: OutputSerializer, **error_responses(401)},
    )
    def get(self, request):
        return Response(self.OutputSerializer(self._body(request.user)).data)

    @extend_schema(
        operation_id="low_balance_set",
        summary="Set (or clear with null) the low-balance threshold and an optional webhook URL",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        low_balance_configure(
            user=request.user, threshold_micro=data["threshold_credits"], webhook_url=data["webhook_url"]
        )
        return Response(self.OutputSerializer(self._body(request.user)).data)

    @staticmethod
    def _body(user) -> dict:
        profile = billing_profile_get(user=user)
        return {
            "threshold_micro": wallet_get(user=user).low_balance_threshold_micro,
            "webhook_url": profile.low_balance_webhook_url,
            "notice_sent": profile.low_balance_notice_sent,
        }


class RedeemApi(APIView):
    @extend_schema_serializer(component_name="Redeem")
    class InputSerializer(serializers.Serializer):
        code = serializers.CharField(max_length=64)

    @extend_schema_serializer(component_name="RedeemResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        credits_added = CreditsField(source="added_micro")
        credits = CreditsField(source="balance_micro")

    @extend_schema(
        operation_id="redeem",
        summary="Redeem a code for credits (once per code and account; attempts are rate-limited)",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 409, 410, 429)},
    )
    def post(self, request):
        data = body_validate(self.InputSerializer, request.data)
        redemption = code_redeem(user=request.user, code=data["code"], client_ip=client_ip(request))
        balance = wallet_get(user=request.user).balance_micro
        body = {"added_micro": redemption.entry.amount_micro, "balance_micro": balance}
        return Response(self.OutputSerializer(body).data)


@extend_schema_serializer(component_name="LedgerEntry")
class EntrySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=LedgerEntry.Kind.choices)
    credits = CreditsField(source="amount_micro", help_text="Signed: positive added, negative taken.")
    balance_after = CreditsField(source="balance_after_micro")
    reference = serializers.CharField(help_text="The job or payment it is about.")
    description = serializers.CharField()


def _money(cents: int, currency: str) -> dict:
    return {"amount": money.cents_to_json(cents), "currency": currency}


@extend_schema_serializer(component_name="Receipt")
class PaymentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=Payment.Kind.choices)
    status = serializers.ChoiceField(choices=Payment.Status.choices)
    credits = CreditsField(source="credits_micro")
    price = serializers.SerializerMethodField(help_text="The price of the credits.")
    fee = serializers.SerializerMethodField(help_text="The card fee passed on.")
    charged = serializers.SerializerMethodField(help_text="What the card was charged: price + fee.")
    refunded = serializers.SerializerMethodField()
    card = serializers.SerializerMethodField()
    payment_intent_id = serializers.CharField(source="stripe_payment_intent_id", allow_null=True)
    failure_message = serializers.CharField()

    @extend_schema_field(MONEY_SCHEMA)
    def get_price(self, payment) -> dict:
        return _money(payment.price_cents, payment.currency)

    @extend_schema_field(MONEY_SCHEMA)
    def get_fee(self, payment) -> dict:
        return _money(payment.fee_cents, payment.currency)

    @extend_schema_field(MONEY_SCHEMA)
    def get_charged(self, payment) -> dict:
        return _money(payment.amount_cents, payment.currency)

    @extend_schema_field(MONEY_SCHEMA)
    def get_refunded(self, payment) -> dict:
        return _money(payment.refunded_cents, payment.currency)

    def get_card(self, payment) -> str:
        return f"{payment.card_brand} •••• {payment.card_last4}" if payment.card_last4 else ""


class UsageApi(APIView):
    PAGE_SIZE_MAX = 200

    @extend_schema_serializer(component_name="UsageResponse")
    class OutputSerializer(serializers.Serializer):
        success = serializers.BooleanField(default=True)
        credits = CreditsField(source="balance_micro")
        entries = EntrySerializer(many=True, help_text="Ledger entries, newest first.")
        next_cursor = serializers.CharField(allow_null=True, help_text="Pass as `cursor` for older entries.")
        payments = PaymentSerializer(many=True, help_text="Card payments (receipts), newest first.")
        key = KeySerializer(required=False, help_text="With `key`: that key, its limits and spend.")

    @extend_schema(
        operation_id="usage",
        summary="Every ledger entry and payment of the account (JSON, or CSV with export=csv)",
        parameters=[
            OpenApiParameter("limit", int, required=False, description="Entries per page, 1 to 200 (50)."),
            OpenApiParameter("cursor", str, required=False),
            OpenApiParameter("kind", str, enum=LedgerEntry.Kind.values, required=False),
            OpenApiParameter("export", str, enum=["csv"], required=False, description="csv: every entry, as CSV."),
            OpenApiParameter(
                "key",
                str,
                required=False,
                description="A key's id or prefix: only the entries of its jobs (and of the keys it made).",
            ),
        ],
        responses={
            (200, "application/json"): OutputSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
            **error_responses(400, 401, 404),
        },
    )
    def get(self, request):
        params = request.query_params
        entries = LedgerEntry.objects.filter(wallet__user=request.user).order_by("-id")
        key = key_find(request, params["key"]) if params.get("key") else None
        if key is not None:
            entries = entries.filter(
                reference__in=Job.objects.filter(api_key__lineage__startswith=key.lineage).values("pk")
            )
        kind = params.get("kind", "")
        if kind:
            if kind not in LedgerEntry.Kind.values:
                raise InvalidBillingRequest(f"kind: one of {', '.join(LedgerEntry.Kind.values)}.", field="kind")
            entries = entries.filter(kind=kind)
        if params.get("export") == "csv":
            return ledger_csv_response(entries, filename="usage.csv")
        limit = params.get("limit", "50")
        cursor = params.get("cursor", "")
        if not limit.isdigit() or not 1 <= int(limit) <= self.PAGE_SIZE_MAX:
            raise InvalidBillingRequest(f"limit: 1 to {self.PAGE_SIZE_MAX}.", field="limit")
        if cursor:
            if not cursor.isdigit():
                raise InvalidBillingRequest("cursor: use the next_cursor of the previous page.", field="cursor")
            entries = entries.filter(id__lt=int(cursor))
        page = list(entries[: int(limit) + 1])
        more = len(page) > int(limit)
        page = page[: int(limit)]
        body = {
            "balance_micro": wallet_get(user=request.user).balance_micro,
            "entries": page,
            "next_cursor": str(page[-1].pk) if more else None,
            "payments": Payment.objects.filter(user=request.user)[:50] if not (cursor or key) else [],
        }
        data = self.OutputSerializer(body).data
        if key is not None:
            data["key"] = keys_body([key])[0]
        return Response(data)


class _Echo:
    def write(self, value):
        return value


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(text: str) -> str:
    """Text a spreadsheet would run as a formula (`=HYPERLINK(…)`, `+cmd|…`) is kept as text by a leading `'`
    (OWASP's CSV injection advice). Our own numbers are written as they are: they are never formulas."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def ledger_csv_response(entries, *, filename: str) -> StreamingHttpResponse:
    """Every entry as CSV, streamed (an account with a long history costs no memory)."""
    writer = csv.writer(_Echo())
    header = ["id", "created_at", "kind", "credits", "balance_after", "reference", "description"]

    def rows():
        yield writer.writerow(header)
        for entry in entries.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    entry.pk,
                    entry.created_at.isoformat(),
                    entry.kind,
                    money.format_credits(entry.amount_micro),
                    money.format_credits(entry.balance_after_micro),
                    csv_safe(entry.reference),
                    csv_safe(entry.description),
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
