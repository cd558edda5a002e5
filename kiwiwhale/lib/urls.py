from django.conf import settings


def instance_base_url(request) -> str:
    """The absolute base URL of this instance, without a trailing slash: SITE_URL when set, else the request's."""
    return settings.SITE_URL or request.build_absolute_uri("/").rstrip("/")
