from django import forms

from apps.billing import money
from apps.billing.models import BillingProfile


class CreditsField(forms.DecimalField):
    """Credits typed by a person, cleaned to micro-credits."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", 18)
        kwargs.setdefault("decimal_places", 6)
        super().__init__(**kwargs)

    def clean(self, value):
        cleaned = super().clean(value)
        return None if cleaned is None else money.credits_to_micro(cleaned)


class BuyForm(forms.Form):
    credits = CreditsField(min_value=0, help_text="Credits to add to your balance.")


class AutoTopupForm(forms.Form):
    enabled = forms.BooleanField(required=False)
    mode = forms.ChoiceField(choices=BillingProfile.Mode.choices)
    trigger_credits = CreditsField(min_value=0)
    amount_credits = CreditsField(required=False, min_value=0)
    target_credits = CreditsField(required=False, min_value=0)
    daily_cap_credits = CreditsField(required=False, min_value=0)
    monthly_cap_credits = CreditsField(required=False, min_value=0)


class LowBalanceForm(forms.Form):
    threshold_credits = CreditsField(required=False, min_value=0, help_text="Empty: no notice.")
    webhook_url = forms.URLField(required=False, max_length=2000, assume_scheme="https")


class RedeemForm(forms.Form):
    code = forms.CharField(max_length=64, strip=True)


class CardRemoveForm(forms.Form):
    card_id = forms.IntegerField()
