"""The /api/v1 routes. The `.php` paths are the published, primary ones; the clean aliases are ours."""

from django.urls import path

from apps.accounts.apis import AgentRegisterApi, KeyListApi, KeyRevokeApi, KeyRotateApi, KeyUpdateApi
from apps.affiliates.apis import AffiliateApi, AffiliateConvertApi, AffiliatePayoutApi
from apps.billing.apis import (
    AutoTopupApi,
    CreditsApi,
    LowBalanceApi,
    PaymentMethodConfirmApi,
    PaymentMethodListApi,
    PaymentMethodRemoveApi,
    PaymentSetupApi,
    RedeemApi,
    TopupApi,
    UsageApi,
)
from apps.catalog.apis import ModelListApi
from apps.generations.apis import JobCancelApi, QuoteApi, generate_view, jobs_view
from apps.showroom.apis import PublicationPublishApi, PublicationRemixApi, PublicationUnpublishApi
from apps.webhooks.apis import WebhookDeliveryListApi, WebhookSecretApi

app_name = "api"

urlpatterns = [
    # Published paths.
    path("agent_register.php", AgentRegisterApi.as_view(), name="agent_register"),
    path("credits.php", CreditsApi.as_view(), name="credits"),
    path("models.php", ModelListApi.as_view(), name="models"),
    path("generate.php", generate_view, name="generate"),
    path("jobs.php", jobs_view, name="jobs"),
    path("agent_setup_payment.php", PaymentSetupApi.as_view(), name="agent_setup_payment"),
    path("agent_confirm_payment_method.php", PaymentMethodConfirmApi.as_view(), name="agent_confirm_payment_method"),
    path("agent_topup.php", TopupApi.as_view(), name="agent_topup"),
    path("agent_autotopup.php", AutoTopupApi.as_view(), name="agent_autotopup"),
    # Ours.
    path("quote.php", QuoteApi.as_view(), name="quote"),
    path("usage.php", UsageApi.as_view(), name="usage"),
    path("redeem.php", RedeemApi.as_view(), name="redeem"),
    path("payment_methods.php", PaymentMethodListApi.as_view(), name="payment_methods"),
    path("payment_method_remove.php", PaymentMethodRemoveApi.as_view(), name="payment_method_remove"),
    path("low_balance.php", LowBalanceApi.as_view(), name="low_balance"),
    path("cancel.php", JobCancelApi.as_view(), name="cancel"),
    path("affiliate.php", AffiliateApi.as_view(), name="affiliate"),
    path("affiliate_convert.php", AffiliateConvertApi.as_view(), name="affiliate_convert"),
    path("affiliate_payout.php", AffiliatePayoutApi.as_view(), name="affiliate_payout"),
    path("showroom_publish.php", PublicationPublishApi.as_view(), name="showroom_publish"),
    path("showroom_unpublish.php", PublicationUnpublishApi.as_view(), name="showroom_unpublish"),
    path("showroom_remix.php", PublicationRemixApi.as_view(), name="showroom_remix"),
    path("webhook_secret.php", WebhookSecretApi.as_view(), name="webhook_secret"),
    path("webhook_deliveries.php", WebhookDeliveryListApi.as_view(), name="webhook_deliveries"),
    path("keys.php", KeyListApi.as_view(), name="keys"),
    path("key_update.php", KeyUpdateApi.as_view(), name="key_update"),
    path("key_revoke.php", KeyRevokeApi.as_view(), name="key_revoke"),
    path("key_rotate.php", KeyRotateApi.as_view(), name="key_rotate"),
    # Clean aliases.
    path("agent_register", AgentRegisterApi.as_view()),
    path("credits", CreditsApi.as_view()),
    path("agent_setup_payment", PaymentSetupApi.as_view()),
    path("agent_confirm_payment_method", PaymentMethodConfirmApi.as_view()),
    path("agent_topup", TopupApi.as_view()),
    path("agent_autotopup", AutoTopupApi.as_view()),
    path("usage", UsageApi.as_view()),
    path("redeem", RedeemApi.as_view()),
    path("payment_methods", PaymentMethodListApi.as_view()),
    path("payment_method_remove", PaymentMethodRemoveApi.as_view()),
    path("low_balance", LowBalanceApi.as_view()),
    path("models", ModelListApi.as_view()),
    path("quote", QuoteApi.as_view()),
    path("generate", generate_view),
    path("jobs", jobs_view),
    path("jobs/<str:job_id>", jobs_view, name="job"),
    path("jobs/<str:job_id>/cancel", JobCancelApi.as_view(), name="job_cancel"),
    path("showroom_publish", PublicationPublishApi.as_view()),
    path("showroom_unpublish", PublicationUnpublishApi.as_view()),
    path("showroom_remix", PublicationRemixApi.as_view()),
    path("webhook_secret", WebhookSecretApi.as_view()),
    path("webhook_deliveries", WebhookDeliveryListApi.as_view()),
    path("keys", KeyListApi.as_view()),
    path("key_update", KeyUpdateApi.as_view()),
    path("key_revoke", KeyRevokeApi.as_view()),
    path("key_rotate", KeyRotateApi.as_view()),
]
