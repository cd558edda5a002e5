"""The account pages of our own; sign-up, log-in, email, password and two-factor are allauth's, under /accounts/."""

from django.urls import path

from apps.accounts import views

app_name = "accounts"

urlpatterns = [
    path("profile.php", views.profile_edit, name="profile"),
    path("profile/deactivate/", views.profile_deactivate, name="deactivate"),
]
