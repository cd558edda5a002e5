from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.socialaccount.models import SocialAccount
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.forms import DeactivateForm, ProfileForm
from apps.accounts.services import account_deactivate, profile_update


@login_required
def profile_edit(request):
    """/profile.php: the display name, and the way to email, password, two-factor and closing the account."""
    form = ProfileForm(request.POST or None, initial={"display_name": request.user.display_name})
    if request.method == "POST" and form.is_valid():
        profile_update(user=request.user, display_name=form.cleaned_data["display_name"])
        messages.success(request, "Profile saved.")
        return redirect("accounts:profile")
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
