"""kiwiwhale.com's published paths, kept exactly, each mapped to the view of the app that owns it.

Every app serves its own routes under its own prefix (kiwiwhale/urls.py); the paths here are the exceptions,
because kiwiwhale.com publishes them and links, bookmarks and agents rely on them: the site's `.php` pages
(api-contract.md, "Site pages") and the `/api/v1/*.php` endpoints. A published page is reversed by the name
given here (`{% url "generations" %}`). The API's clean aliases (`/api/v1/generate` beside `generate.php`)
are generated from API_ENDPOINTS, so the two lists can never disagree.
"""

from django.urls import path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from apps.accounts import views as accounts
from apps.accounts.apis import AgentRegisterApi, KeyListApi, KeyRevokeApi, KeyRotateApi, KeyUpdateApi
from apps.affiliates import views as affiliates
from apps.affiliates.apis import AffiliateApi, AffiliateConvertApi, AffiliatePayoutApi
from apps.billing import views as billing
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
from apps.blog import views as blog
from apps.catalog import views as catalog
from apps.catalog.apis import ModelListApi
from apps.contact import views as contact
from apps.generations import views as generations
from apps.generations.apis import JobCancelApi, QuoteApi, generate_view, jobs_view
from apps.showroom import views as showroom
from apps.showroom.apis import PublicationPublishApi, PublicationRemixApi, PublicationUnpublishApi
from apps.site import setup_views
from apps.site import views as site
from apps.webhooks.apis import WebhookDeliveryListApi, WebhookSecretApi

# The site's pages: (path, view, name).
PAGES = [
    # Published by kiwiwhale.com.
    ("showroom.php", showroom.showroom, "showroom"),  # one publication: /showroom.php?id=<id>
    ("generations.php", generations.generations_list, "generations"),
    ("api_key.php", accounts.api_key_list, "api_key"),
    ("billing.php", billing.billing_page, "billing"),
    ("blog.php", blog.blog, "blog"),  # one post: /blog.php?slug=<slug>
    ("affiliate.php", affiliates.affiliate_page, "affiliate"),
    ("contact.php", contact.contact_create, "contact"),
    ("terms.php", contact.terms_show, "terms"),
    ("docs/<slug:slug>.php", site.docs_page, "docs"),
    ("model.php", catalog.model_detail, "model_detail"),  # the five model pages take ?model=<public_model>
    ("model-playground.php", catalog.model_playground, "model_playground"),
    ("model-api.php", catalog.model_api, "model_api"),
    ("model-docs.php", catalog.model_docs, "model_docs"),
    ("model-code.php", catalog.model_code, "model_code"),
    # Ours, named in the same style.
    ("generation.php", generations.generation_detail, "generation"),  # ?id=<job_id>
    ("profile.php", accounts.profile_edit, "profile"),
    ("setup.php", setup_views.setup_page, "setup"),
    (
        "api-reference.php",
        SpectacularRedocView.as_view(url_name="openapi", template_name="site/api_reference.html"),
        "api_reference",
    ),
    # The split view serves Swagger UI's start-up code as a file: the Content-Security-Policy runs no inline script.
    ("api-explorer.php", SpectacularSwaggerSplitView.as_view(url_name="openapi"), "api_explorer"),
]

# The API's endpoints under /api/v1/: (name, view). Each answers at `<name>.php` (URL name "api:<name>") and at
# the clean alias `<name>`.
API_ENDPOINTS = [
    # Published by kiwiwhale.com.
    ("agent_register", AgentRegisterApi.as_view()),
    ("credits", CreditsApi.as_view()),
    ("models", ModelListApi.as_view()),
    ("generate", generate_view),
    ("jobs", jobs_view),
    ("agent_setup_payment", PaymentSetupApi.as_view()),
    ("agent_confirm_payment_method", PaymentMethodConfirmApi.as_view()),
    ("agent_topup", TopupApi.as_view()),
    ("agent_autotopup", AutoTopupApi.as_view()),
    # Ours, in the same style.
    ("quote", QuoteApi.as_view()),
    ("usage", UsageApi.as_view()),
    ("redeem", RedeemApi.as_view()),
    ("payment_methods", PaymentMethodListApi.as_view()),
    ("payment_method_remove", PaymentMethodRemoveApi.as_view()),
    ("low_balance", LowBalanceApi.as_view()),
    ("cancel", JobCancelApi.as_view()),
    ("affiliate", AffiliateApi.as_view()),
    ("affiliate_convert", AffiliateConvertApi.as_view()),
    ("affiliate_payout", AffiliatePayoutApi.as_view()),
    ("showroom_publish", PublicationPublishApi.as_view()),
    ("showroom_unpublish", PublicationUnpublishApi.as_view()),
    ("showroom_remix", PublicationRemixApi.as_view()),
    ("webhook_secret", WebhookSecretApi.as_view()),
    ("webhook_deliveries", WebhookDeliveryListApi.as_view()),
    ("keys", KeyListApi.as_view()),
    ("key_update", KeyUpdateApi.as_view()),
    ("key_revoke", KeyRevokeApi.as_view()),
    ("key_rotate", KeyRotateApi.as_view()),
]


def api_urlpatterns() -> list:
    """The `.php` path of every API endpoint first (the primary, documented one), then its clean alias."""
    primary = [path(f"{name}.php", view, name=name) for name, view in API_ENDPOINTS]
    return primary + [path(name, view) for name, view in API_ENDPOINTS]


urlpatterns = [path(route, view, name=name) for route, view, name in PAGES]
