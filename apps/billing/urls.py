"""The billing pages: /billing.php (published) and the /billing/… pages and webhook (ours)."""

from django.urls import path

from apps.billing import views

app_name = "billing"

urlpatterns = [
    path("billing.php", views.billing_page, name="page"),
    path("billing/checkout/", views.checkout_create, name="checkout"),
    path("billing/checkout/success/", views.checkout_success, name="checkout_success"),
    path("billing/checkout/cancel/", views.checkout_cancel, name="checkout_cancel"),
    path("billing/cards/add/", views.card_add, name="card_add"),
    path("billing/cards/remove/", views.card_remove, name="card_remove"),
    path("billing/setup/<str:token>/", views.setup_page, name="setup"),
    path("billing/pay/<str:token>/", views.action_page, name="action"),
    path("billing/autotopup/", views.autotopup_update, name="autotopup"),
    path("billing/low-balance/", views.low_balance_update, name="low_balance"),
    path("billing/redeem/", views.redeem, name="redeem"),
    path("billing/usage.csv", views.usage_csv, name="usage_csv"),
    path("billing/receipts/<int:pk>/", views.receipt, name="receipt"),
    path("billing/stripe/webhook/", views.stripe_webhook, name="stripe_webhook"),
]
