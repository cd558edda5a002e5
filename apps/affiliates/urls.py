"""The affiliate's actions, under /affiliate/; the affiliate page is /affiliate.php (kiwiwhale/legacy_urls.py)."""

from django.urls import path

from apps.affiliates import views

app_name = "affiliates"

urlpatterns = [
    path("convert/", views.affiliate_convert, name="convert"),
    path("payout/", views.affiliate_payout, name="payout"),
]
