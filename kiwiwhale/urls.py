from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from kiwiwhale.lib.media_serve import media_serve

urlpatterns = [
    path("", include("apps.ops.urls")),
    path("", include("apps.site.urls")),
    path("", include("apps.affiliates.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.showroom.urls")),
    path("", include("apps.blog.urls")),
    path("", include("apps.contact.urls")),
    path("", include("apps.billing.urls")),
    path("api/v1/", include("apps.api.urls")),
    path("v1/", include("apps.openai_api.urls")),  # OpenAI-compatible (docs/openai.md)
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
