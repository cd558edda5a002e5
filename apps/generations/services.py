import logging
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.billing.services import hold_place, hold_refund, hold_release, hold_settle
from apps.catalog.models import AIModel, ModelRoute
from apps.catalog.services import ModelUnavailable, input_validate
from apps.generations.models import Job, Output, job_id_new
from apps.generations.providers import (
    OutputData,
    ProviderError,
    RunResult,
    provider_get,
    provider_keys_available,
)

logger = logging.getLogger(__name__)


def routes_usable(model: AIModel) -> list[ModelRoute]:
    keys = provider_keys_available()
    return [route for route in model.routes.all() if route.enabled and route.provider in keys]


def job_create(*, user, model: AIModel, input: dict, api_key=None, webhook_url: str = "") -> Job:
    """Validates and prices the input, then holds the cost and creates the job together; enqueues after commit."""
    validated = input_validate(model=model, data=input)
    if not routes_usable(model):
        raise ModelUnavailable(model.public_model)
    cost_micro = model.cost_micro(validated)
    job_id = job_id_new()
    with transaction.atomic():
        hold = hold_place(
            user=user,
            amount_micro=cost_micro,
            key=f"job:{job_id}",
            reference=job_id,
            description=model.public_model,
        )
        job = Job.objects.create(
            id=job_id,
            user=user,
            api_key=api_key,
            model=model,
            input=validated,
            cost_micro=cost_micro,
            hold=hold,
            webhook_url=webhook_url,
            enqueued_at=timezone.now(),
        )
        transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
    return job


def job_enqueue(*, job_id: str) -> None:
    from apps.generations.tasks import job_run as job_run_task

    try:
        job_run_task.delay(job_id)
    except Exception:
        # The job is committed; jobs_requeue_lost finds it and enqueues it again once the broker is back.
        logger.exception("Could not enqueue job %s", job_id)


def job_run(*, job_id: str) -> None:
    """Claims a queued job, runs it through its routes in priority order, and records the outcome once."""
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.PROCESSING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return  # a duplicate delivery, or a job already finished or cancelled
    job = Job.objects.select_related("model", "hold").get(pk=job_id)
    try:
        result, route = _run_routes(job)
    except ProviderError as exc:
        job_fail(job=job, code=exc.code, message=exc.message)
        return
    except Exception:
        logger.exception("Job %s crashed", job_id)
        job_fail(job=job, code="internal_error", message="The engine failed unexpectedly.")
        return
    _job_complete(job=job, result=result, provider=route.provider)


def _run_routes(job: Job) -> tuple[RunResult, ModelRoute]:
    # Called outside any transaction: a provider may take minutes.
    routes = routes_usable(job.model)
    if not routes:
        raise ProviderError("No provider can serve this model right now.", code="model_unavailable")
    last_error = None
    for route in routes:
        try:
            return provider_get(route.provider).run(
                upstream_model=route.upstream_model, params=route.params, input=job.input
            ), route
        except ProviderError as exc:
            last_error = exc
            Job.objects.filter(pk=job.pk).update(provider=route.provider)
            if not exc.retryable:
                raise
            logger.warning("Job %s: route %s failed (%s); trying the next", job.pk, route, exc.message)
    raise last_error


def _job_complete(*, job: Job, result: RunResult, provider: str) -> None:
    # Files are written before the transaction; should it roll back they are orphans, never missing outputs.
    rows = [_output_row(job, position, data) for position, data in enumerate(result.outputs)]
    with transaction.atomic():
        finished = Job.objects.filter(pk=job.pk, status=Job.Status.PROCESSING).update(
            status=Job.Status.COMPLETED, completed_at=timezone.now(), provider=provider, usage=result.usage
        )
        if not finished:
            # Timed out (and released) by the sweeper while running: keep nothing, charge nothing.
            for row in rows:
                if row.file:
                    row.file.delete(save=False)
            return
        Output.objects.bulk_create(rows)
        if job.hold_id:
            hold_settle(hold=job.hold, reference=job.pk)


def _output_row(job: Job, position: int, data: OutputData) -> Output:
    row = Output(
        job=job,
        position=position,
        type=data.type,
        content_type=data.content_type,
        file_name=data.file_name,
        text=data.text,
        data=data.data,
        width=data.width,
        height=data.height,
        duration_seconds=data.duration_seconds,
    )
    if data.content:
        row.file.save(data.file_name, ContentFile(data.content), save=False)
        row.file_size = len(data.content)
    return row


def job_fail(*, job: Job, code: str, message: str) -> bool:
    """Fails a job that has not finished and returns its whole hold. True if this call failed it."""
    with transaction.atomic():
        failed = Job.objects.filter(pk=job.pk, status__in=[Job.Status.QUEUED, Job.Status.PROCESSING]).update(
            status=Job.Status.FAILED,
            completed_at=timezone.now(),
            error_code=code,
            error_message=message[:2000],
        )
        if failed and job.hold_id:
            hold_release(hold=job.hold, reason=f"Job failed: {code}", reference=job.pk)
    return bool(failed)


def job_cancel(*, job: Job) -> bool:
    """Cancels a job that has not started, returning its hold. True if this call cancelled it."""
    with transaction.atomic():
        canceled = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.CANCELED, completed_at=timezone.now()
        )
        if canceled and job.hold_id:
            hold_release(hold=job.hold, reason="Job canceled", reference=job.pk)
    return bool(canceled)


def job_delete(*, job: Job) -> None:
    """Hides a finished job from its owner's history; the row stays, as the record of what was charged.

    Its output files are deleted (they may be large, and nobody can reach them any more).
    """
    if not job.is_terminal:
        raise JobNotFinished(job.status)
    Job.objects.filter(pk=job.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    for output in job.outputs.all():
        if output.file:
            output.file.delete(save=False)


class JobNotFinished(Exception):
    pass


def job_retry(*, job: Job) -> Job:
    """A new job with the same model and input, charged anew; the original stays as it was."""
    return job_create(user=job.user, model=job.model, input=job.input, webhook_url=job.webhook_url)


def job_refund(*, job: Job, reason: str, created_by=None) -> bool:
    """An admin returns what a completed job charged. True if this call refunded it."""
    if job.status != Job.Status.COMPLETED or not job.hold_id:
        return False
    return hold_refund(hold=job.hold, reason=reason, created_by=created_by, reference=job.pk)


def jobs_requeue_lost() -> int:
    """Enqueues again queued jobs whose message was lost (crash between commit and enqueue, broker outage)."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_REQUEUE_AFTER_SECONDS)
    job_ids = list(
        Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__lt=cutoff).values_list("pk", flat=True)[:500]
    )
    Job.objects.filter(pk__in=job_ids).update(enqueued_at=timezone.now())
    for job_id in job_ids:
        job_enqueue(job_id=job_id)
    return len(job_ids)


def jobs_fail_stuck() -> int:
    """Fails jobs processing longer than JOB_TIMEOUT_SECONDS (a worker died mid-run) and releases their holds."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_TIMEOUT_SECONDS)
    stuck = Job.objects.filter(status=Job.Status.PROCESSING, started_at__lt=cutoff).select_related("hold")[:500]
    return sum(job_fail(job=job, code="timeout", message="The job took too long and was stopped.") for job in stuck)
