from celery import shared_task

from apps.api import idempotency


@shared_task(name="apps.api.tasks.idempotency_purge")
def idempotency_purge() -> int:
    return idempotency.idempotency_purge()
