import uuid

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.template.response import TemplateResponse

from apps.accounts.models import ApiKey, User
from apps.accounts.services import api_key_revoke
from apps.billing import money
from apps.billing.services import credits_grant


class GrantCreditsForm(forms.Form):
    credits = forms.CharField(max_length=30, label="Credits for each account", help_text="e.g. 5 or 0.25")
    reason = forms.CharField(max_length=200, initial="Granted by the operator")
    # One per rendering of the form: a double submit posts nothing twice (the ledger's idempotency key).
    grant_id = forms.UUIDField(widget=forms.HiddenInput)

    def clean_credits(self) -> int:
        try:
            amount_micro = money.credits_to_micro(self.cleaned_data["credits"])
        except money.InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from None
        if amount_micro <= 0:
            raise forms.ValidationError("Grant more than 0 credits.")
        return amount_micro


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "account_type", "date_joined", "is_active"]
    list_filter = ["account_type", "is_active", "is_staff"]
    fieldsets = [*BaseUserAdmin.fieldsets, ("KiwiWhale", {"fields": ["account_type", "display_name"]})]
    inlines = [ApiKeyInline]
    actions = ["grant_credits"]

    @admin.action(description="Grant credits")
    def grant_credits(self, request, queryset):
        """Adds credits to each selected account through the ledger, once per form (see GrantCreditsForm)."""
        if "apply" in request.POST:
            form = GrantCreditsForm(request.POST)
            if form.is_valid():
                amount_micro = form.cleaned_data["credits"]
                grant_id = form.cleaned_data["grant_id"]
                for user in queryset:
                    credits_grant(
                        user=user,
                        amount_micro=amount_micro,
                        reason=form.cleaned_data["reason"],
                        idempotency_key=f"admin-grant:{grant_id}:{user.pk}",
                        created_by=request.user,
                    )
                credits = money.format_credits(amount_micro)
                self.message_user(request, f"Granted {credits} credits to {queryset.count()} account(s).")
                return None
        else:
            form = GrantCreditsForm(initial={"grant_id": uuid.uuid4()})
        context = {
            **self.admin_site.each_context(request),
            "title": "Grant credits",
            "form": form,
            "users": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/accounts/grant_credits.html", context)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username", "user__email"]
    readonly_fields = ["user", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created by their owner, who alone sees the raw key

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(key=key)
