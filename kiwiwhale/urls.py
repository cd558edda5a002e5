from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from kiwiwhale.lib.media_serve import media_serve

# Each app under its own prefix. The published paths of kiwiwhale.com (the site's `.php` pages, /api/v1/*.php)
# are kept in one place, kiwiwhale/legacy_urls.py, each pointing at the view of the app that owns it.
urlpatterns = [
    path("", include("kiwiwhale.legacy_urls")),
    path("", include("apps.site.urls")),  # the home page, and the files browsers and agents look for at the root
    path("", include("apps.ops.urls")),  # /healthz, /readyz, /metrics: the paths probes and scrapers expect
    path("account/", include("apps.accounts.urls")),
    path("affiliate/", include("apps.affiliates.urls")),
    path("billing/", include("apps.billing.urls")),
    path("blog/", include("apps.blog.urls")),
    path("generations/", include("apps.generations.urls")),
    path("showroom/", include("apps.showroom.urls")),
    path("api/v1/", include("apps.api.urls")),
    path("v1/", include("apps.openai_api.urls")),  # OpenAI-compatible (docs/openai.md); /mcp: kiwiwhale/asgi.py
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]

if settings.SERVE_MEDIA:
    # Local media: output paths hold a random folder name, so a URL is its own access token.
    media_prefix = settings.MEDIA_URL.lstrip("/")
    urlpatterns.append(re_path(rf"^{media_prefix}(?P<path>.*)$", media_serve, {"document_root": settings.MEDIA_ROOT}))

handler404 = "apps.site.views.not_found"
handler500 = "apps.site.views.server_error"
