import csv
import io
import uuid

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path

from apps.billing import money
from apps.billing import stripe_gateway as gateway
from apps.billing.apis import csv_safe
from apps.billing.models import (
    BillingEvent,
    BillingProfile,
    Hold,
    LedgerEntry,
    Payment,
    PaymentMethod,
    RedemptionBatch,
    RedemptionCode,
    StripeEvent,
    Wallet,
)
from apps.billing.services import (
    BillingError,
    WebhookHandlingFailed,
    autotopup_wallet_sync,
    credits_adjust,
    credits_grant,
    payment_refund,
    payment_reversal_apply,
    redemption_batch_create,
    stripe_event_process,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is append-only: rows are written by services, never edited here."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CreditsForm(forms.Form):
    amount = forms.DecimalField(max_digits=18, decimal_places=6, help_text="Credits; negative takes credits back.")
    reason = forms.CharField(max_length=300)
    # Made when the form is shown and posted with it: the ledger key, so a double submit posts once. (A post
    # without one, from a script, gets a fresh key.)
    nonce = forms.UUIDField(widget=forms.HiddenInput, required=False)


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ["user", "balance", "updated_at"]
    search_fields = ["user__username", "user__email"]
    actions = ["grant_or_adjust"]

    @admin.display(description="Balance (credits)")
    def balance(self, obj):
        return money.format_credits(obj.balance_micro)

    def get_urls(self):
        return [
            path(
                "<int:pk>/credits/",
                self.admin_site.admin_view(self.credits_view),
                name="billing_wallet_credits",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Grant or adjust credits")
    def grant_or_adjust(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one wallet.", messages.ERROR)
            return None
        return redirect("admin:billing_wallet_credits", pk=queryset.get().pk)

    def credits_view(self, request, pk):
        wallet = Wallet.objects.select_related("user").get(pk=pk)
        form = CreditsForm(request.POST or None, initial={"nonce": uuid.uuid4()})
        if request.method == "POST" and form.is_valid():
            amount_micro = money.credits_to_micro(form.cleaned_data["amount"])
            post = credits_grant if amount_micro > 0 else credits_adjust
            try:
                post(
                    user=wallet.user,
                    amount_micro=amount_micro,
                    reason=form.cleaned_data["reason"],
                    idempotency_key=f"admin:{form.cleaned_data['nonce'] or uuid.uuid4()}",
                    created_by=request.user,
                )
            except Exception as exc:  # InsufficientCredits, zero amount: shown to the admin, nothing written
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, "Credits posted.", messages.SUCCESS)
                return redirect("admin:billing_wallet_changelist")
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "wallet": wallet,
            "title": "Credits",
        }
        return render(request, "admin/billing/wallet_credits.html", context)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "wallet", "kind", "amount", "balance_after", "reference", "description"]
    list_filter = ["kind"]
    search_fields = ["wallet__user__username", "wallet__user__email", "reference", "idempotency_key"]
    list_select_related = ["wallet__user"]

    @admin.display(description="Amount")
    def amount(self, obj):
        return money.format_credits(obj.amount_micro)

    @admin.display(description="Balance after")
    def balance_after(self, obj):
        return money.format_credits(obj.balance_after_micro)


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ["key", "wallet", "amount_micro", "charged_micro", "status", "created_at", "resolved_at"]
    list_filter = ["status"]
    search_fields = ["key"]


@admin.register(BillingProfile)
class BillingProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "stripe_customer_id", "autotopup_enabled", "autotopup_mode", "autotopup_declines"]
    list_filter = ["autotopup_enabled", "autotopup_mode"]
    search_fields = ["user__username", "user__email", "stripe_customer_id"]
    readonly_fields = ["user", "stripe_customer_id", "autotopup_declines", "low_balance_notice_sent", "updated_at"]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        autotopup_wallet_sync(user=obj.user)  # the wallet's copy of the trigger follows the edit


@admin.register(PaymentMethod)
class PaymentMethodAdmin(ReadOnlyAdmin):
    list_display = ["user", "brand", "last4", "exp_month", "exp_year", "is_default", "created_at"]
    search_fields = ["user__username", "user__email", "stripe_payment_method_id", "last4"]


class RefundForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=12, decimal_places=2, required=False, help_text="In the payment's currency; empty: all that is left."
    )


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    """Payments are written by billing only. Refunding one here refunds it at Stripe and takes its credits back
    (one audited clawback entry); the webhook that follows changes nothing more."""

    list_display = [
        "pk",
        "created_at",
        "user",
        "kind",
        "status",
        "credits",
        "charged",
        "refunded",
        "dispute_status",
        "review_reason",
    ]
    list_filter = ["status", "kind", "dispute_status", ("review_reason", admin.EmptyFieldListFilter)]
    search_fields = [
        "user__username",
        "user__email",
        "stripe_payment_intent_id",
        "stripe_checkout_session_id",
        "stripe_charge_id",
        "stripe_idempotency_key",
    ]
    list_select_related = ["user"]
    actions = ["refund", "record_lost_dispute"]

    @admin.display(description="Credits")
    def credits(self, obj):
        return money.format_credits(obj.credits_micro)

    @admin.display(description="Charged")
    def charged(self, obj):
        return money.format_money(obj.amount_cents, obj.currency)

    @admin.display(description="Refunded")
    def refunded(self, obj):
        return money.format_money(obj.refunded_cents, obj.currency) if obj.refunded_cents else ""

    def get_urls(self):
        return [
            path("<int:pk>/refund/", self.admin_site.admin_view(self.refund_view), name="billing_payment_refund"),
            *super().get_urls(),
        ]

    @admin.action(description="Refund at Stripe (takes the credits back)")
    def refund(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one payment.", messages.ERROR)
            return None
        return redirect("admin:billing_payment_refund", pk=queryset.get().pk)

    @admin.action(description="Record a lost dispute (takes the credits back)")
    def record_lost_dispute(self, request, queryset):
        for payment in queryset:
            payment_reversal_apply(payment=payment, dispute_status="lost", dispute_lost_cents=payment.amount_cents)
        self.message_user(request, f"{queryset.count()} payment(s) recorded as lost disputes.", messages.SUCCESS)

    def refund_view(self, request, pk):
        payment = Payment.objects.select_related("user").get(pk=pk)
        form = RefundForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            amount = form.cleaned_data["amount"]
            try:
                payment_refund(
                    payment=payment,
                    amount_cents=None if amount is None else int(amount * 100),
                    created_by=request.user,
                )
            except (BillingError, gateway.BillingDisabled, gateway.GatewayError) as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, "Refunded; the credits were taken back.", messages.SUCCESS)
                return redirect("admin:billing_payment_changelist")
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "payment": payment,
            "charged": money.format_money(payment.amount_cents, payment.currency),
            "refunded": money.format_money(payment.refunded_cents, payment.currency),
            "title": f"Refund payment {payment.pk}",
        }
        return render(request, "admin/billing/payment_refund.html", context)


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "event_id", "type", "status", "attempts", "error_short"]
    list_filter = ["status", "type"]
    search_fields = ["event_id", "type"]
    actions = ["process_again"]

    @admin.display(description="Error")
    def error_short(self, obj):
        return obj.error[:120]

    @admin.action(description="Process again")
    def process_again(self, request, queryset):
        failed = 0
        for event in queryset:
            try:
                stripe_event_process(event=event)
            except WebhookHandlingFailed:
                failed += 1
        level = messages.WARNING if failed else messages.SUCCESS
        self.message_user(request, f"Processed {queryset.count() - failed}; {failed} failed again.", level)


@admin.register(BillingEvent)
class BillingEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user", "kind", "message"]
    list_filter = ["kind"]
    search_fields = ["user__username", "user__email", "message"]


class RedemptionBatchForm(forms.ModelForm):
    credits = forms.DecimalField(max_digits=18, decimal_places=6, min_value=0, help_text="Credits each code adds.")
    count = forms.IntegerField(min_value=1, max_value=10_000, help_text="How many codes to make.")

    class Meta:
        model = RedemptionBatch
        fields = ["name", "max_uses", "expires_at"]


@admin.register(RedemptionBatch)
class RedemptionBatchAdmin(admin.ModelAdmin):
    """Adding a batch makes its codes and downloads them as CSV, once: only their hashes are kept."""

    list_display = ["name", "credits", "codes", "max_uses", "redeemed", "expires_at", "disabled", "created_at"]
    list_filter = ["disabled"]
    search_fields = ["name"]
    fields = ["name", "credits", "count", "max_uses", "expires_at"]

    @admin.display(description="Credits per code")
    def credits(self, obj):
        return money.format_credits(obj.credits_micro)

    @admin.display(description="Codes")
    def codes(self, obj):
        return obj.codes.count()

    @admin.display(description="Redemptions")
    def redeemed(self, obj):
        return sum(obj.codes.values_list("uses", flat=True))

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = RedemptionBatchForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return self.fields if obj is None else ["name", "max_uses", "expires_at", "disabled"]

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        if request.method != "POST":
            return super().add_view(request, form_url, extra_context)
        form = RedemptionBatchForm(request.POST)
        if not form.is_valid():
            return super().add_view(request, form_url, extra_context)
        data = form.cleaned_data
        batch, codes = redemption_batch_create(
            name=data["name"],
            credits_micro=money.credits_to_micro(data["credits"]),
            count=data["count"],
            max_uses=data["max_uses"],
            expires_at=data["expires_at"],
            created_by=request.user,
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["code", "credits", "max_uses", "expires_at", "batch"])
        for code in codes:
            writer.writerow(
                [
                    code,
                    money.format_credits(batch.credits_micro),
                    batch.max_uses,
                    batch.expires_at or "",
                    csv_safe(batch.name),
                ]
            )
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="codes-batch-{batch.pk}.csv"'
        response["Cache-Control"] = "no-store"
        return response


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(ReadOnlyAdmin):
    list_display = ["hint", "batch", "uses"]
    search_fields = ["hint", "batch__name"]
    list_select_related = ["batch"]
