"""`Idempotency-Key` (IETF draft): same key + same body → the first response; a new body → 422; still running → 409.

Only successful responses are kept: a request that failed (402, 422…) created nothing, so it may be retried with
the same key once its cause is fixed. The record and the work it guards commit in one transaction.

A running request holds its key by a short lease that a helper thread renews while it runs. A request killed
mid-way (its process gone, nothing of its work committed) stops renewing, so a retry may take the key over once
the lease lapses — seconds later, not minutes. Each claim carries its own holder token, and the work commits only
if its claim still holds the key: of a slow first request and the retry that took over, exactly one commits.
"""

import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework.response import Response

from apps.api.exceptions import ApiError
from apps.api.models import IdempotencyRecord, lease_end

HEADER = "Idempotency-Key"


class _KeyLost(Exception):
    """Our lease lapsed and another request took the key over: roll our work back."""


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
    mine = IdempotencyRecord.objects.filter(pk=record.pk, holder=record.holder)
    keeper = _LeaseKeeper(record.pk, record.holder)
    keeper.start()
    try:
        with transaction.atomic():
            response = run()
            if 200 <= response.status_code < 300:
                kept = mine.filter(status=IdempotencyRecord.Status.IN_PROGRESS).update(
                    status=IdempotencyRecord.Status.DONE,
                    response_status=response.status_code,
                    response_body=response.data,
                )
                if not kept:
                    raise _KeyLost
                return response
    except _KeyLost:
        raise ApiError(
            409, "idempotency_in_progress", f"A request with this {HEADER} is still being processed."
        ) from None
    except BaseException:
        mine.delete()
        raise
    finally:
        keeper.stop()
    mine.delete()
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
            # The work commits with the record, so a request whose lease lapsed left nothing behind: its key may
            # be taken over (exactly one taker, by the conditional update on the old holder).
            holder = uuid.uuid4().hex
            if IdempotencyRecord.objects.filter(
                Q(lease_until__lt=now), pk=record.pk, status=record.status, holder=record.holder
            ).update(holder=holder, lease_until=lease_end(), created_at=now):
                record.holder = holder
                return record
            raise ApiError(409, "idempotency_in_progress", f"A request with this {HEADER} is still being processed.")
        return Response(record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"})
    raise ApiError(409, "idempotency_in_progress", f"A request with this {HEADER} is still being processed.")


class _LeaseKeeper(threading.Thread):
    """Renews a claim's lease every third of its length until stopped (own thread, own database connection)."""

    def __init__(self, pk: int, holder: str):
        super().__init__(name=f"idempotency-lease-{pk}", daemon=True)
        self.pk, self.holder = pk, holder
        self.stopped = threading.Event()

    def run(self):
        try:
            while not self.stopped.wait(settings.IDEMPOTENCY_LEASE_SECONDS / 3):
                IdempotencyRecord.objects.filter(
                    pk=self.pk, holder=self.holder, status=IdempotencyRecord.Status.IN_PROGRESS
                ).update(lease_until=lease_end())
        finally:
            connection.close()

    def stop(self):
        self.stopped.set()


def idempotency_purge() -> int:
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
