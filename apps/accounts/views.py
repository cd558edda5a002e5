from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts import services
from apps.accounts.forms import ApiKeyCreateForm, DeactivateForm, ProfileForm
from apps.accounts.models import ApiKey
from apps.accounts.services import account_deactivate, profile_update
from apps.generations.key_limits import keys_with_spend
from kiwiwhale.lib.urls import instance_base_url


@login_required
def profile_edit(request):
    """/profile.php: the display name, and the way to email, password, two-factor and closing the account."""
    form = ProfileForm(request.POST or None, initial={"display_name": request.user.display_name})
    if request.method == "POST" and form.is_valid():
        profile_update(user=request.user, display_name=form.cleaned_data["display_name"])
        messages.success(request, "Profile saved.")
        return redirect("profile")
    return _render_profile(request, form=form, deactivate_form=DeactivateForm(user=request.user))


@login_required
@require_POST
def profile_deactivate(request):
    form = DeactivateForm(request.POST, user=request.user)
    if not form.is_valid():
        profile_form = ProfileForm(initial={"display_name": request.user.display_name})
        return _render_profile(request, form=profile_form, deactivate_form=form, status=400)
    account_deactivate(user=request.user)
    logout(request)
    messages.success(request, "Your account is closed. Thank you for having used it.")
    return redirect("/")


def _render_profile(request, *, form, deactivate_form, status=200):
    user = request.user
    return render(
        request,
        "account/profile.html",
        {
            "form": form,
            "deactivate_form": deactivate_form,
            "emails": EmailAddress.objects.filter(user=user).order_by("-primary", "email"),
            "has_password": user.has_usable_password(),
            "totp_enabled": Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists(),
            "social_accounts": SocialAccount.objects.filter(user=user),
        },
        status=status,
    )


# --- API keys (/api_key.php) -------------------------------------------------------------------------------


NEW_KEY_SESSION = "api_key_new"


@login_required
def api_key_list(request):
    """Create-and-redirect (POST → 303 → GET): a reload never makes a second key. The raw key rides in the
    session to the next page view only, which pops it: it is shown exactly once and never stored elsewhere."""
    form = ApiKeyCreateForm()
    status = 200
    if request.method == "POST":
        form = ApiKeyCreateForm(request.POST)
        if not form.is_valid():
            status = 400
        else:
            name = form.cleaned_data["name"] or "default"
            try:
                created, raw_key = services.api_key_create(user=request.user, name=name, **form.limits())
            except services.KeyRefused as exc:
                form.add_error(None, str(exc))
                status = 400
            else:
                request.session[NEW_KEY_SESSION] = {"id": created.pk, "raw": raw_key}
                return redirect(reverse("api_key"), permanent=False)
    new_key = request.session.pop(NEW_KEY_SESSION, None) if request.method == "GET" else None
    keys = keys_with_spend(ApiKey.objects.filter(user=request.user).order_by("revoked_at", "-created_at"))
    created = next((key for key in keys if new_key and key.pk == new_key.get("id")), None)
    raw_key = new_key["raw"] if created is not None else None
    context = {
        "form": form,
        "keys": keys,
        "created": created,
        "raw_key": raw_key,
        "base_url": instance_base_url(request),
    }
    response = render(request, "accounts/api_key.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page may hold a raw key; never from a cache or the back button
    return response


@login_required
@require_POST
def api_key_revoke(request):
    key_id = request.POST.get("key_id", "")
    key = ApiKey.objects.filter(user=request.user, pk=key_id).first() if key_id.isdigit() else None
    if key is None:
        raise Http404("No such key.")
    if key.is_active:
        services.api_key_revoke(key=key)
        messages.success(request, f"Revoked {key.prefix}… ({key.name}). Requests with it now get 401.")
    else:
        messages.info(request, f"{key.prefix}… was already revoked.")
    return redirect("api_key")
