"""The /api/v1 routes: every endpoint at its `.php` path and its clean alias (kiwiwhale/legacy_urls.py), plus the
REST-style job paths."""

from django.urls import path

from apps.generations.apis import JobCancelApi, jobs_view
from kiwiwhale.legacy_urls import api_urlpatterns

app_name = "api"

urlpatterns = [
    *api_urlpatterns(),
    path("jobs/<str:job_id>", jobs_view, name="job"),
    path("jobs/<str:job_id>/cancel", JobCancelApi.as_view(), name="job_cancel"),
]
