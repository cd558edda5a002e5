from datetime import UTC

from django import forms
from django.utils import timezone

from apps.accounts.models import SCOPES, User
from apps.accounts.services import allowed_ips_clean, allowed_models_clean, scopes_clean
from apps.billing import money


class ProfileForm(forms.Form):
    display_name = forms.CharField(
        max_length=150,
        required=False,
        label="Display name",
        help_text="Shown with the work you publish in the showroom. Empty: shown as anonymous.",
    )


class DeactivateForm(forms.Form):
    password = forms.CharField(
        label="Your password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    confirm = forms.BooleanField(label="I understand that I can no longer sign in or use my API keys.")

    def __init__(self, *args, user: User, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if not user.has_usable_password():
            del self.fields["password"]  # signed up through GitHub or Google: the session is the proof

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("This is not your password.")
        return password


def _lines(text: str) -> list[str]:
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


class CreditsLimitField(forms.CharField):
    """A spend limit typed in credits: None when left empty, else micro-credits (0 or more)."""

    def clean(self, value):
        text = super().clean(value).strip()  # the text's own checks (max_length) first
        if not text:
            return None
        try:
            micro = money.credits_to_micro(text)
        except money.InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from None
        if micro < 0:
            raise forms.ValidationError("Give 0 or more credits.")
        return micro


class ApiKeyCreateForm(forms.Form):
    """A key for a program, with optional limits (docs/auth.md#key-limits); empty fields mean no limit."""

    name = forms.CharField(
        max_length=100,
        required=False,
        strip=True,
        help_text="What uses this key, e.g. “my research agent”. Optional.",
    )
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SCOPES],
        initial=list(SCOPES),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="generate: jobs; billing: cards and top-ups; keys: manage keys.",
    )
    spend_limit_day = CreditsLimitField(required=False, max_length=20, label="Spend per day (UTC), credits")
    spend_limit_month = CreditsLimitField(required=False, max_length=20, label="Spend per month (UTC), credits")
    spend_limit_total = CreditsLimitField(required=False, max_length=20, label="Spend in total, credits")
    allowed_models = forms.CharField(
        required=False, max_length=4000, label="Models", help_text="One per line or comma: z-image, gpt-image-2/*."
    )
    allowed_ips = forms.CharField(
        required=False, max_length=4000, label="IP ranges", help_text="CIDR, e.g. 203.0.113.0/24."
    )
    rpm_limit = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="Requests per minute")
    concurrency_limit = forms.IntegerField(required=False, min_value=1, max_value=10_000, label="Concurrent jobs")
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires (UTC)",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def clean_allowed_models(self):
        try:
            return allowed_models_clean(_lines(self.cleaned_data["allowed_models"]))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_allowed_ips(self):
        try:
            return allowed_ips_clean(_lines(self.cleaned_data["allowed_ips"]))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value is not None:
            value = value.replace(tzinfo=UTC) if timezone.is_naive(value) else value
            if value <= timezone.now():
                raise forms.ValidationError("Give a time in the future.")
        return value

    def limits(self) -> dict:
        """The keyword arguments of api_key_create."""
        data = self.cleaned_data
        return {
            "scopes": scopes_clean(data["scopes"]),
            "spend_limit_day_micro": data["spend_limit_day"],
            "spend_limit_month_micro": data["spend_limit_month"],
            "spend_limit_total_micro": data["spend_limit_total"],
            "allowed_models": data["allowed_models"],
            "allowed_ips": data["allowed_ips"],
            "rpm_limit": data["rpm_limit"],
            "concurrency_limit": data["concurrency_limit"],
            "expires_at": data["expires_at"],
        }
