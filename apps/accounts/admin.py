import uuid

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.template.response import TemplateResponse

from apps.accounts.forms import CreditsLimitField
from apps.accounts.models import ApiKey, User
from apps.accounts.services import (
    allowed_ips_clean,
    allowed_models_clean,
    api_key_revoke,
    api_key_update,
    scopes_clean,
)
from apps.billing import money
from apps.billing.services import credits_grant
from apps.generations.key_limits import keys_with_spend


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


class ApiKeyAdminForm(forms.ModelForm):
    """Limits in credits for the operator; stored as micro-credits, checked as the API checks them."""

    spend_limit_day = CreditsLimitField(required=False, label="Spend limit per UTC day (credits)")
    spend_limit_month = CreditsLimitField(required=False, label="Spend limit per UTC month (credits)")
    spend_limit_total = CreditsLimitField(required=False, label="Spend limit in total (credits)")

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "allowed_models", "allowed_ips", "rpm_limit", "concurrency_limit", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for period in ("day", "month", "total"):
            micro = getattr(self.instance, f"spend_limit_{period}_micro")
            self.initial[f"spend_limit_{period}"] = money.format_credits(micro) if micro is not None else ""

    def clean_scopes(self):
        try:
            return scopes_clean(self.cleaned_data["scopes"] or [])
        except (ValueError, TypeError) as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_allowed_models(self):
        try:
            return allowed_models_clean(self.cleaned_data["allowed_models"] or [])
        except (ValueError, TypeError) as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_allowed_ips(self):
        try:
            return allowed_ips_clean(self.cleaned_data["allowed_ips"] or [])
        except (ValueError, TypeError) as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyAdminForm
    list_display = ["prefix", "name", "user", "scopes", "limits", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["prefix", "name", "user__username", "user__email"]
    readonly_fields = ["user", "prefix", "lineage", "created_at", "last_used_at", "revoked_at", "spend"]
    fieldsets = [
        (None, {"fields": ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at", "lineage"]}),
        (
            "Limits (empty: none)",
            {
                "fields": [
                    "scopes",
                    "spend_limit_day",
                    "spend_limit_month",
                    "spend_limit_total",
                    "allowed_models",
                    "allowed_ips",
                    "rpm_limit",
                    "concurrency_limit",
                    "expires_at",
                    "spend",
                ]
            },
        ),
    ]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        # Through the service, so every web process forgets the cached key at once.
        limits = {field: form.cleaned_data[field] for field in ApiKeyAdminForm.Meta.fields if field != "name"}
        for period in ("day", "month", "total"):
            limits[f"spend_limit_{period}_micro"] = form.cleaned_data[f"spend_limit_{period}"]
        api_key_update(key=obj, name=form.cleaned_data["name"], **limits)

    @admin.display(description="Limits")
    def limits(self, key):
        parts = [
            f"{label} ≤ {money.format_credits(value)}"
            for label, value in (
                ("day", key.spend_limit_day_micro),
                ("month", key.spend_limit_month_micro),
                ("total", key.spend_limit_total_micro),
            )
            if value is not None
        ]
        parts += [f"{key.rpm_limit}/min"] if key.rpm_limit else []
        parts += [f"{key.concurrency_limit} at once"] if key.concurrency_limit else []
        parts += ["models"] if key.allowed_models else []
        parts += ["IPs"] if key.allowed_ips else []
        return ", ".join(parts) or "—"

    @admin.display(description="Spend (credits: today / month / total; jobs running)")
    def spend(self, key):
        used = keys_with_spend([key])[0].spend
        day, month, total = (money.format_credits(used[name]) for name in ("day", "month", "total"))
        return f"{day} / {month} / {total}; {used['active']} running"

    def has_add_permission(self, request):
        return False  # keys are created by their owner, who alone sees the raw key

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(key=key)
