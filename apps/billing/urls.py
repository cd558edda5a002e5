"""Billing's pages, actions and Stripe webhook, under /billing/; the billing page is /billing.php
(kiwiwhale/legacy_urls.py)."""

from django.urls import path

from apps.billing import views

app_name = "billing"

urlpatterns = [
    path("checkout/", views.checkout_create, name="checkout"),
    path("checkout/success/", views.checkout_success, name="checkout_success"),
    path("checkout/cancel/", views.checkout_cancel, name="checkout_cancel"),
    path("cards/add/", views.card_add, name="card_add"),
    path("cards/remove/", views.card_remove, name="card_remove"),
    path("setup/<str:token>/", views.setup_page, name="setup"),
    path("pay/<str:token>/", views.action_page, name="action"),
    path("autotopup/", views.autotopup_update, name="autotopup"),
    path("low-balance/", views.low_balance_update, name="low_balance"),
    path("redeem/", views.redeem, name="redeem"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("receipts/<int:pk>/", views.receipt, name="receipt"),
    path("stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
