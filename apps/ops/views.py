import hmac

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST

from apps.ops.checks import readiness
from apps.ops.metrics import metrics_text


@never_cache
def healthz(request):
    """The process is up and answering. Touches nothing else, so a slow database never restarts the web."""
    return JsonResponse({"ok": True})


@never_cache
def readyz(request):
    """Every dependency reachable: database, broker, cache and storage. 503 with the failing ones otherwise."""
    checks = readiness()
    ready = all(value.startswith("ok") for value in checks.values())
    return JsonResponse({"ok": ready, "checks": checks}, status=200 if ready else 503)


@never_cache
def metrics(request):
    """Prometheus text format, for staff sessions or `Authorization: Bearer <METRICS_TOKEN>`."""
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    allowed = (token and hmac.compare_digest(given, token)) or (request.user.is_authenticated and request.user.is_staff)
    if not allowed:
        return JsonResponse(
            {"success": False, "error": "forbidden", "message": "Metrics need a staff login or the METRICS_TOKEN."},
            status=403,
        )
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
