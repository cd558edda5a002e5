"""The site's pages at their published paths (the `.php` names are kiwiwhale.com's), plus discovery."""

from django.urls import path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

from apps.site import setup_views, views

app_name = "site"

urlpatterns = [
    path("", views.home, name="home"),
    path("model.php", views.model_detail, name="model_detail"),
    path("model-playground.php", views.model_playground, name="model_playground"),
    path("model-api.php", views.model_api, name="model_api"),
    path("model-docs.php", views.model_docs, name="model_docs"),
    path("model-code.php", views.model_code, name="model_code"),
    path("generations.php", views.generations_list, name="generations"),
    path("generation.php", views.generation_detail, name="generation"),
    path("generations/rerun.php", views.generation_rerun, name="generation_rerun"),
    path("generations/delete.php", views.generation_delete, name="generation_delete"),
    path("generations/cancel.php", views.generation_cancel, name="generation_cancel"),
    path("api_key.php", views.api_key_list, name="api_key"),
    path("api_key/revoke.php", views.api_key_revoke, name="api_key_revoke"),
    path("docs/", views.docs_index, name="docs_index"),
    path("docs/<slug:slug>.php", views.docs_page, name="docs"),
    path("favicon.ico", views.favicon, name="favicon"),
    path(
        "api-reference.php",
        SpectacularRedocView.as_view(url_name="openapi", template_name="site/api_reference.html"),
        name="api_reference",
    ),
    # The split view serves Swagger UI's start-up code as a file: the Content-Security-Policy runs no inline script.
    path("api-explorer.php", SpectacularSwaggerSplitView.as_view(url_name="openapi"), name="api_explorer"),
    path("llms.txt", views.llms_txt, name="llms_txt"),
    path(".well-known/agent.json", views.agent_json, name="agent_json"),
    path("setup.php", setup_views.setup_page, name="setup"),
    path("setup/login/<str:token>/", setup_views.setup_login, name="setup_login"),
]
