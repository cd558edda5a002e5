"""Poll: one indexed SELECT of the job by id and owner. Submit: one conditional UPDATE of the wallet (the hold)
and one INSERT of a row. Both answer JSON of the size KiwiWhale answers."""

import json
import secrets

from django.db import connection, transaction
from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def poll(request):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, status, cost_micro, created_at FROM generations_job WHERE id = %s AND user_id = %s",
            [request.GET["job_id"], int(request.GET["user_id"])],
        )
        row = cursor.fetchone()
    return JsonResponse({"success": True, "job_id": row[0], "status": row[1], "cost_micro": row[2]})


@csrf_exempt
def submit(request):
    body = json.loads(request.body)
    price = 10_000
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE billing_wallet SET balance_micro = balance_micro - %s WHERE user_id = %s AND balance_micro >= %s",
            [price, int(body["user_id"]), price],
        )
        if cursor.rowcount != 1:
            return JsonResponse({"success": False, "error": "insufficient_credits"}, status=402)
        job_id = "job_" + secrets.token_urlsafe(18)
        cursor.execute("INSERT INTO bench_floor_job (id, input) VALUES (%s, %s)", [job_id, json.dumps(body)])
    return JsonResponse({"success": True, "job_id": job_id, "status": "queued"}, status=202)


urlpatterns = [path("poll", poll), path("submit", submit)]
