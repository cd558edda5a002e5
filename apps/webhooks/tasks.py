from celery import shared_task

from apps.webhooks import services


@shared_task(name="apps.webhooks.tasks.webhook_attempt")
def webhook_attempt(delivery_id: str, attempt: int) -> None:
    services.webhook_attempt(delivery_id=delivery_id, attempt=attempt)


@shared_task(name="apps.webhooks.tasks.webhook_deliveries_sweep")
def webhook_deliveries_sweep() -> int:
    return services.webhook_deliveries_sweep()
