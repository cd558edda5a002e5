from celery import shared_task

from apps.affiliates import services


@shared_task(name="apps.affiliates.tasks.commissions_mature")
def commissions_mature() -> int:
    return services.commissions_mature()
