from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularJSONAPIView

urlpatterns = [
    path("", include("apps.site.urls")),
    path("", include("apps.affiliates.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.showroom.urls")),
    path("", include("apps.blog.urls")),
    path("", include("apps.contact.urls")),
    path("", include("apps.billing.urls")),
    path("api/v1/", include("apps.api.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]

if settings.SERVE_MEDIA:
    # Local media: output paths hold a random folder name, so a URL is its own access token.
    media_prefix = settings.MEDIA_URL.lstrip("/")
    urlpatterns.append(re_path(rf"^{media_prefix}(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}))

handler404 = "apps.site.views.not_found"
