"""The /api/v1 routes. The `.php` paths are the published, primary ones; the clean aliases are ours."""

from django.urls import path

from apps.accounts.apis import AgentRegisterApi
from apps.billing.apis import CreditsApi
from apps.catalog.apis import ModelListApi
from apps.generations.apis import GenerateApi, JobApi, JobCancelApi

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
    # Clean aliases.
    path("agent_register", AgentRegisterApi.as_view()),
    path("credits", CreditsApi.as_view()),
    path("models", ModelListApi.as_view()),
    path("generate", GenerateApi.as_view()),
    path("jobs", JobApi.as_view()),
    path("jobs/<str:job_id>", JobApi.as_view(), name="job"),
    path("jobs/<str:job_id>/cancel", JobCancelApi.as_view(), name="job_cancel"),
]
