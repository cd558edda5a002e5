from celery import shared_task

from apps.billing import services


@shared_task(name="apps.billing.tasks.autotopup_run")
def autotopup_run(wallet_id: int) -> int | None:
    payment = services.autotopup_run(wallet_id=wallet_id)
    return payment.pk if payment is not None else None


@shared_task(name="apps.billing.tasks.low_balance_notify")
def low_balance_notify(wallet_id: int) -> bool:
    return services.low_balance_notify(wallet_id=wallet_id)


@shared_task(name="apps.billing.tasks.payments_reconcile")
def payments_reconcile() -> int:
    return services.payments_reconcile()
