"""Actions on one's own jobs, under /generations/ (POST, CSRF-protected). The history and a generation's page
are at their published paths: kiwiwhale/legacy_urls.py."""

from django.urls import path

from apps.generations import views

app_name = "generations"

urlpatterns = [
    path("rerun/", views.generation_rerun, name="rerun"),
    path("delete/", views.generation_delete, name="delete"),
    path("cancel/", views.generation_cancel, name="cancel"),
]
