from django import forms

from apps.accounts.models import User


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


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        required=False,
        strip=True,
        help_text="What uses this key, e.g. “my research agent”. Optional.",
    )
