"""The site's own routes at the root: the catalog home, the docs index, the setup sign-in link and the files that
browsers and agents look for at conventional paths. Its published `.php` pages are in kiwiwhale/legacy_urls.py."""

from django.urls import path

from apps.site import setup_views, views

app_name = "site"

urlpatterns = [
    path("", views.home, name="home"),
    path("docs/", views.docs_index, name="docs_index"),
    path("setup/login/<str:token>/", setup_views.setup_login, name="setup_login"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("llms.txt", views.llms_txt, name="llms_txt"),
    path(".well-known/agent.json", views.agent_json, name="agent_json"),
]
