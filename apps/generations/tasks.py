from celery import shared_task

from apps.generations import services


@shared_task(name="apps.generations.tasks.job_run")
def job_run(job_id: str) -> None:
    services.job_run(job_id=job_id)


@shared_task(name="apps.generations.tasks.job_poll")
def job_poll(job_id: str) -> None:
    services.job_poll(job_id=job_id)


@shared_task(name="apps.generations.tasks.jobs_requeue_lost")
def jobs_requeue_lost() -> int:
    return services.jobs_requeue_lost()


@shared_task(name="apps.generations.tasks.jobs_fail_stuck")
def jobs_fail_stuck() -> int:
    return services.jobs_fail_stuck()


@shared_task(name="apps.generations.tasks.jobs_recover_lapsed")
def jobs_recover_lapsed() -> int:
    return services.jobs_recover_lapsed()


@shared_task(name="apps.generations.tasks.jobs_cancel_overdue")
def jobs_cancel_overdue() -> int:
    return services.jobs_cancel_overdue()
