from django import forms

from apps.showroom.models import Report
from apps.showroom.services import TITLE_MAX


class PublishForm(forms.Form):
    job_id = forms.CharField(max_length=40, widget=forms.HiddenInput)
    title = forms.CharField(max_length=TITLE_MAX, required=False, help_text="Empty: the model's name.")
    show_prompt = forms.BooleanField(
        required=False, label="Show my prompt", help_text="Visitors see the prompt and can remix it as it is."
    )


class ReportForm(forms.Form):
    reason = forms.ChoiceField(choices=Report.Reason.choices, widget=forms.RadioSelect, label="What is wrong?")
    details = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), max_length=2000, required=False, label="Details (optional)"
    )
