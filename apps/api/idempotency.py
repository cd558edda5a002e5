"""`Idempotency-Key` (IETF draft): same key + same body → the first response; a new body → 422; still running → 409.

Only successful responses are kept: a request that failed (402, 422…) created nothing, so it may be retried with
the same key once its cause is fixed. The record and the work it guards commit in one transaction.
"""

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from apps.api.exceptions import ApiError
from apps.api.models import IdempotencyRecord

HEADER = "Idempotency-Key"


def idempotent(request, *, scope: str, run: Callable[[], Response]) -> Response:
    key = request.headers.get(HEADER)
    if key is None:
        return run()
    if not key.strip() or len(key) > 255:
        raise ApiError(400, "invalid_request", f"The {HEADER} header must be 1 to 255 characters.")
    request_hash = hashlib.sha256(json.dumps(request.data, sort_keys=True, default=str).encode()).hexdigest()
    record = _record_claim(request.user, scope, key, request_hash)
    if isinstance(record, Response):
        return record
    try:
        with transaction.atomic():
            response = run()
            if 200 <= response.status_code < 300:
                IdempotencyRecord.objects.filter(pk=record.pk).update(
                    status=IdempotencyRecord.Status.DONE,
                    response_status=response.status_code,
                    response_body=response.data,
                )
                return response
    except BaseException:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    IdempotencyRecord.objects.filter(pk=record.pk).delete()
    return response


def _record_claim(user, scope: str, key: str, request_hash: str) -> IdempotencyRecord | Response:
    now = timezone.now()
    for _ in range(2):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(user=user, scope=scope, key=key, request_hash=request_hash)
        except IntegrityError:
            pass
        record = IdempotencyRecord.objects.filter(user=user, scope=scope, key=key).first()
        if record is None:
            continue  # deleted by its own failed request a moment ago: claim it now
        if record.created_at < now - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS):
            IdempotencyRecord.objects.filter(pk=record.pk, created_at=record.created_at).delete()
            continue
        if record.request_hash != request_hash:
            raise ApiError(422, "idempotency_key_reused", f"This {HEADER} was used with a different request body.")
        if record.status == IdempotencyRecord.Status.IN_PROGRESS:
            # The work commits with the record, so a request that died mid-way left nothing behind: after a
            # while its key may be taken over (exactly one taker, by the conditional update).
            stale_before = now - timedelta(seconds=settings.IDEMPOTENCY_STALE_SECONDS)
            if record.created_at < stale_before and IdempotencyRecord.objects.filter(
                pk=record.pk, status=record.status, created_at=record.created_at
            ).update(created_at=now):
                return record
            raise ApiError(409, "idempotency_in_progress", f"A request with this {HEADER} is still being processed.")
        return Response(record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"})
    raise ApiError(409, "idempotency_in_progress", f"A request with this {HEADER} is still being processed.")


def idempotency_purge() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
