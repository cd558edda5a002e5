import uuid

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect, render
from django.urls import path

from apps.billing import money
from apps.billing.models import Hold, LedgerEntry, Wallet
from apps.billing.services import credits_adjust, credits_grant


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
        form = CreditsForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            amount_micro = money.credits_to_micro(form.cleaned_data["amount"])
            post = credits_grant if amount_micro > 0 else credits_adjust
            try:
                post(
                    user=wallet.user,
                    amount_micro=amount_micro,
                    reason=form.cleaned_data["reason"],
                    idempotency_key=f"admin:{uuid.uuid4()}",
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
