"""The /api/v1 routes. The `.php` paths are the published, primary ones; the clean aliases are ours."""

from django.urls import path

from apps.accounts.apis import AgentRegisterApi
from apps.affiliates.apis import AffiliateApi, AffiliateConvertApi, AffiliatePayoutApi
from apps.billing.apis import CreditsApi
from apps.catalog.apis import ModelListApi
from apps.generations.apis import GenerateApi, JobApi, JobCancelApi
from apps.showroom.apis import PublicationPublishApi, PublicationRemixApi, PublicationUnpublishApi

app_name = "api"

urlpatterns = [
    # Published paths.
    path("agent_register.php", AgentRegisterApi.as_view(), name="agent_register"),
    path("credits.php", CreditsApi.as_view(), name="credits"),
    path("models.php", ModelListApi.as_view(), name="models"),
    path("generate.php", GenerateApi.as_view(), name="generate"),
    path("jobs.php", JobApi.as_view(), name="jobs"),
    # Ours.
    path("cancel.php", JobCancelApi.as_view(), name="cancel"),
    path("affiliate.php", AffiliateApi.as_view(), name="affiliate"),
    path("affiliate_convert.php", AffiliateConvertApi.as_view(), name="affiliate_convert"),
    path("affiliate_payout.php", AffiliatePayoutApi.as_view(), name="affiliate_payout"),
    path("showroom_publish.php", PublicationPublishApi.as_view(), name="showroom_publish"),
    path("showroom_unpublish.php", PublicationUnpublishApi.as_view(), name="showroom_unpublish"),
    path("showroom_remix.php", PublicationRemixApi.as_view(), name="showroom_remix"),
    # Clean aliases.
    path("agent_register", AgentRegisterApi.as_view()),
    path("credits", CreditsApi.as_view()),
    path("models", ModelListApi.as_view()),
    path("generate", GenerateApi.as_view()),
    path("jobs", JobApi.as_view()),
    path("jobs/<str:job_id>", JobApi.as_view(), name="job"),
    path("jobs/<str:job_id>/cancel", JobCancelApi.as_view(), name="job_cancel"),
    path("showroom_publish", PublicationPublishApi.as_view()),
    path("showroom_unpublish", PublicationUnpublishApi.as_view()),
    path("showroom_remix", PublicationRemixApi.as_view()),
]
