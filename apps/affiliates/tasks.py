from celery import shared_task

from apps.affiliates import services


@shared_task(name="apps.affiliates.tasks.commissions_mature")
def commissions_mature() -> int:
    return services.commissions_mature()


@shared_task(name="apps.affiliates.tasks.commission_award_for_payment")
def commission_award_for_payment(payment_id: int) -> int | None:
    commission = services.commission_award_for_payment(payment_id=payment_id)
    return commission.pk if commission is not None else None


@shared_task(name="apps.affiliates.tasks.commission_reverse_for_payment")
def commission_reverse_for_payment(payment_id: int) -> bool:
    return services.commission_reverse_for_payment(payment_id=payment_id)


@shared_task(name="apps.affiliates.tasks.commission_handovers_catch_up")
def commission_handovers_catch_up() -> int:
    return services.commission_handovers_catch_up()
