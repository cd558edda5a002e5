"""/setup.php: the operator's first run (staff only), and the one-time login link `manage.py setup_link` prints."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.accounts.models import User
from apps.site import setup
from kiwiwhale.lib.urls import instance_base_url

LINK_SALT = "kiwiwhale.setup-link"
LINK_MAX_AGE_SECONDS = 24 * 3600


class ProviderForm(forms.Form):
    kind = forms.ChoiceField(choices=[(kind, values[0]) for kind, values in setup.KINDS.items()], label="Kind")
    slug = forms.SlugField(
        max_length=40, label="Slug", help_text="What catalog routes call it: fal, openai, replicate, comfyui, ollama…"
    )
    base_url = forms.URLField(
        required=False, assume_scheme="https", label="Base URL", help_text="Empty: the provider's public API."
    )
    api_key = forms.CharField(
        required=False,
        strip=True,
        max_length=500,
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted, never shown again. Empty on an existing provider: the stored key is kept.",
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")


def _staff_only(request):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        raise Http404("No such page.")
    return None


def setup_page(request):
    refusal = _staff_only(request)
    if refusal:
        return refusal
    form = ProviderForm(request.POST or None, initial={"enabled": True})
    report = None
    status = 200
    if request.method == "POST":
        if not form.is_valid():
            status = 400
        else:
            data = form.cleaned_data
            stored_key = _stored_key(data["slug"])
            report = setup.connection_test(
                kind=data["kind"], base_url=data["base_url"], api_key=data["api_key"] or stored_key
            )
            if request.POST.get("action") == "save":
                # Only models the server lists now can be served: the ticked names are checked against it.
                wanted = set(request.POST.getlist("serve_models"))
                serve = (
                    [name for name in report.models if name in wanted] if data["kind"] == "openai_compatible" else []
                )
                setup.provider_save(
                    slug=data["slug"],
                    kind=data["kind"],
                    base_url=data["base_url"],
                    api_key=data["api_key"],
                    enabled=data["enabled"],
                    serve_models=serve,
                )
                added = f" and {len(serve)} model(s) added to the catalog" if serve else ""
                messages.success(request, f"Saved {data['slug']}{added}. Connection: {report.message}")
                return redirect("setup")
    base_url = instance_base_url(request)
    context = {
        "form": form,
        "report": report,
        "providers": setup.providers_overview(),
        "kinds": setup.KINDS,
        "stripe_enabled": settings.STRIPE_ENABLED,
        "stripe_publishable": bool(settings.STRIPE_PUBLISHABLE_KEY),
        "stripe_webhook_secret": bool(settings.STRIPE_WEBHOOK_SECRET),
        "stripe_webhook_url": base_url + reverse("billing:stripe_webhook"),
        "email_status": setup.email_status(),
        "signup_free_credits": settings.SIGNUP_FREE_CREDITS,
        "contact_email": getattr(settings, "CONTACT_EMAIL", ""),
    }
    return render(request, "site/setup.html", context, status=status)


def _stored_key(slug: str) -> str:
    from apps.catalog.models import ProviderAccount

    account = ProviderAccount.objects.filter(slug=slug).first()
    return account.api_key if account is not None else ""


def setup_link_token(user: User) -> str:
    """A signed token that logs `user` in once: it names their last login, which using it changes."""
    return signing.dumps({"u": user.pk, "l": user.last_login.isoformat() if user.last_login else ""}, salt=LINK_SALT)


def setup_login(request, token: str):
    try:
        data = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE_SECONDS)
    except signing.BadSignature:
        raise Http404("This link is not valid (any more).") from None
    user = User.objects.filter(pk=data.get("u"), is_superuser=True, is_active=True).first()
    last_login = user.last_login.isoformat() if user is not None and user.last_login else ""
    if user is None or last_login != data.get("l"):
        raise Http404("This link was used already.")
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, "Welcome. Set up providers, payments and email here; this link no longer works.")
    return redirect("setup")
