from allauth.account.adapter import DefaultAccountAdapter

from apps.accounts.services import account_setup


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            account_setup(user=user)
        return user
