"""The account's own actions, under /account/ (sign-up, log-in, email, password and two-factor are allauth's,
under /accounts/). The profile and API key pages are at their published paths: kiwiwhale/legacy_urls.py."""

from django.urls import path

from apps.accounts import views

app_name = "accounts"

urlpatterns = [
    path("deactivate/", views.profile_deactivate, name="deactivate"),
    path("keys/revoke/", views.api_key_revoke, name="api_key_revoke"),
]
