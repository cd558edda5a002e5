from django import forms
from django.contrib import admin

from apps.billing import money
from apps.catalog.models import AIModel, ModelRoute, ProviderAccount
from apps.catalog.services import provider_account_save
from apps.generations.providers import LOCAL, PROVIDERS


class ModelRouteInline(admin.TabularInline):
    model = ModelRoute
    extra = 0
    fields = ["priority", "provider", "upstream_model", "params", "enabled"]


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = ["public_model", "label", "category", "cost", "enabled", "sort_order"]
    list_filter = ["category", "enabled"]
    search_fields = ["public_model", "label", "product_id"]
    list_editable = ["enabled", "sort_order"]
    inlines = [ModelRouteInline]

    @admin.display(description="Cost (credits)")
    def cost(self, obj):
        return money.format_credits(obj.base_cost_micro)


class ProviderAccountForm(forms.ModelForm):
    api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, help_text="Remove the stored key.")
    base_url = forms.URLField(required=False, assume_scheme="https", help_text=ProviderAccount.base_url.field.help_text)
    kind = forms.ChoiceField(choices=[])

    class Meta:
        model = ProviderAccount
        fields = ["slug", "kind", "label", "enabled", "base_url", "options"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(kind, kind) for kind in PROVIDERS if kind != LOCAL]


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = ["slug", "kind", "label", "enabled", "key_set", "healthy", "last_success_at", "last_error_at"]
    list_filter = ["enabled", "kind"]
    readonly_fields = ["key_set", "last_success_at", "last_error_at", "last_error"]
    fieldsets = [
        (None, {"fields": ["slug", "kind", "label", "enabled", "base_url", "options"]}),
        ("Credentials", {"fields": ["key_set", "api_key", "clear_api_key"]}),
        ("Health", {"fields": ["last_success_at", "last_error_at", "last_error"]}),
    ]

    @admin.display(boolean=True, description="Key set")
    def key_set(self, obj):
        return obj.has_api_key

    @admin.display(boolean=True)
    def healthy(self, obj):
        return obj.healthy

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        api_key = "" if data.get("clear_api_key") else (data.get("api_key") or None)
        provider_account_save(account=obj, api_key=api_key)
