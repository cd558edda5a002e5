from allauth.account.adapter import DefaultAccountAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter

from apps.accounts.services import account_setup
from apps.affiliates.services import referral_attribute_from_request
from kiwiwhale.lib.ratelimit import client_ip


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request):
        # allauth's login and sign-up limits count per client address: trust X-Forwarded-For exactly as far as the
        # API does (NUM_PROXIES), or behind a proxy every visitor would share the proxy's address and its limit.
        return client_ip(request)

    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            account_setup(user=user)
            referral_attribute_from_request(request=request, user=user)
        return user


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form=form)
        account_setup(user=user)
        referral_attribute_from_request(request=request, user=user)
        return user
