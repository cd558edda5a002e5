from django import forms


class ContactForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label="Your name")
    email = forms.EmailField(label="Your email", help_text="We answer here.")
    subject = forms.CharField(max_length=150, required=False)
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 8}), max_length=5000, min_length=5)
    # Spam trap: hidden from people (CSS and aria), filled in by bots that fill every field.
    website = forms.CharField(
        required=False,
        label="Leave this field empty",
        widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}),
    )

    @property
    def is_spam(self) -> bool:
        return bool(self.cleaned_data.get("website"))
