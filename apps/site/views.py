from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from apps.catalog.models import AIModel
from apps.generations.providers import provider_keys_available


def home(request):
    models = AIModel.objects.servable(provider_keys_available())
    return render(request, "site/home.html", {"models": models})


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"success": False, "error": "not_found", "message": f"No endpoint at {request.path}."}, status=404
        )
    return render(request, "404.html", status=404)
