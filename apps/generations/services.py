import logging
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.billing.services import hold_place, hold_refund, hold_release, hold_settle
from apps.catalog.models import AIModel, ModelRoute
from apps.catalog.services import ModelUnavailable, input_validate, provider_health_record
from apps.generations.models import Job, Output, job_id_new
from apps.generations.providers import (
    OutputData,
    Pending,
    ProviderError,
    RunResult,
    provider_for,
    provider_keys_available,
)
from apps.generations.waits import job_ended_notify
from kiwiwhale.lib.tasks import task_enqueue

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

    task_enqueue(job_run_task, job_id)  # if the broker is down, jobs_requeue_lost enqueues it again


def job_run(*, job_id: str) -> None:
    """Claims a queued job and runs it through its routes in priority order; the outcome is recorded once."""
    claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
        status=Job.Status.PROCESSING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return  # a duplicate delivery, or a job already finished or cancelled
    job = Job.objects.select_related("model", "hold").get(pk=job_id)
    _job_try_routes(job, routes_usable(job.model))


def job_poll(*, job_id: str) -> None:
    """Checks a long upstream job once: completes it, waits again, or falls back to the next route."""
    job = Job.objects.select_related("model", "hold", "route").filter(pk=job_id, status=Job.Status.PROCESSING).first()
    if job is None or job.route is None:
        return
    # A lease on the poll: of two deliveries of one poll message, only one calls the upstream.
    lease = timezone.now() + timedelta(seconds=max(60, settings.JOB_POLL_INTERVAL_SECONDS * 4))
    if not Job.objects.filter(pk=job.pk, status=Job.Status.PROCESSING, poll_at=job.poll_at).update(poll_at=lease):
        return
    route = job.route
    try:
        outcome = provider_for(route.provider).poll(
            upstream_model=route.upstream_model, params=route.params, input=job.input, state=job.upstream_state
        )
    except ProviderError as exc:
        errors = job.upstream_state.get("poll_errors", 0) + 1
        if exc.retryable and errors <= POLL_ERROR_BUDGET:
            _job_wait(job, route, Pending(state={**job.upstream_state, "poll_errors": errors}))
            return
        provider_health_record(slug=route.provider, error=exc.message)
        _job_try_routes(job, _routes_after(job.model, route), first_error=exc)
        return
    except Exception:
        logger.exception("Job %s: polling crashed", job.pk)
        job_fail(job=job, code="internal_error", message="The engine failed unexpectedly.")
        return
    if isinstance(outcome, Pending):
        _job_wait(job, route, outcome)
    else:
        provider_health_record(slug=route.provider)
        _job_complete(job=job, result=outcome, provider=route.provider)


POLL_ERROR_BUDGET = 5  # transient errors while polling one upstream job before its route counts as failed


def _job_try_routes(job: Job, routes: list[ModelRoute], first_error: ProviderError | None = None) -> None:
    # Called outside any transaction: a provider may take minutes.
    last_error = first_error or ProviderError("No provider can serve this model right now.", code="model_unavailable")
    for route in routes:
        Job.objects.filter(pk=job.pk).update(provider=route.provider, route=route)
        try:
            outcome = provider_for(route.provider).run(
                upstream_model=route.upstream_model, params=route.params, input=job.input
            )
        except ProviderError as exc:
            provider_health_record(slug=route.provider, error=exc.message)
            last_error = exc
            if not exc.retryable:
                break
            logger.warning("Job %s: route %s failed (%s); trying the next", job.pk, route, exc.message)
            continue
        except Exception:
            logger.exception("Job %s crashed", job.pk)
            job_fail(job=job, code="internal_error", message="The engine failed unexpectedly.")
            return
        provider_health_record(slug=route.provider)
        if isinstance(outcome, Pending):
            _job_wait(job, route, outcome)
        else:
            _job_complete(job=job, result=outcome, provider=route.provider)
        return
    job_fail(job=job, code=last_error.code, message=last_error.message)


def _routes_after(model: AIModel, route: ModelRoute) -> list[ModelRoute]:
    routes = routes_usable(model)
    ids = [r.pk for r in routes]
    return routes[ids.index(route.pk) + 1 :] if route.pk in ids else []


def _job_wait(job: Job, route: ModelRoute, pending: Pending) -> None:
    delay = pending.retry_after if pending.retry_after is not None else settings.JOB_POLL_INTERVAL_SECONDS
    updated = Job.objects.filter(pk=job.pk, status=Job.Status.PROCESSING).update(
        route=route,
        provider=route.provider,
        upstream_id=pending.upstream_id or job.upstream_id,
        upstream_state=pending.state,
        poll_at=timezone.now() + timedelta(seconds=delay),
    )
    if updated:
        job_poll_enqueue(job_id=job.pk, delay=delay)


def job_poll_enqueue(*, job_id: str, delay: float = 0) -> None:
    from apps.generations.tasks import job_poll as job_poll_task

    task_enqueue(job_poll_task, job_id, countdown=delay)  # if lost, jobs_requeue_lost polls it again


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
        transaction.on_commit(lambda: job_ended_notify(job.pk))


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
        if failed:
            transaction.on_commit(lambda: job_ended_notify(job.pk))
    return bool(failed)


def job_cancel(*, job: Job) -> bool:
    """Cancels a job that has not finished and returns its hold. True if this call cancelled it.

    A queued job always can be; a processing one only while it waits on an upstream, which is asked to stop.
    """
    with transaction.atomic():
        canceled = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.CANCELED, completed_at=timezone.now()
        ) or Job.objects.filter(pk=job.pk, status=Job.Status.PROCESSING, poll_at__isnull=False).update(
            status=Job.Status.CANCELED, completed_at=timezone.now()
        )
        if canceled and job.hold_id:
            hold_release(hold=job.hold, reason="Job canceled", reference=job.pk)
        if canceled:
            transaction.on_commit(lambda: job_ended_notify(job.pk))
    if canceled:
        _upstream_cancel(job)
    return bool(canceled)


def _upstream_cancel(job: Job) -> None:
    job.refresh_from_db(fields=["route", "upstream_state"])
    if job.route_id is None or not job.upstream_state:
        return
    route = job.route
    try:
        provider_for(route.provider).cancel(
            upstream_model=route.upstream_model, params=route.params, state=job.upstream_state
        )
    except Exception:
        logger.warning("Job %s: the upstream could not be asked to stop", job.pk, exc_info=True)


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
    """Enqueues again what lost its message: queued jobs never picked up, and upstream jobs whose poll vanished."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.JOB_REQUEUE_AFTER_SECONDS)
    queued = list(
        Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__lt=cutoff).values_list("pk", flat=True)[:500]
    )
    Job.objects.filter(pk__in=queued).update(enqueued_at=now)
    for job_id in queued:
        job_enqueue(job_id=job_id)
    waiting = list(
        Job.objects.filter(status=Job.Status.PROCESSING, poll_at__lt=cutoff).values_list("pk", flat=True)[:500]
    )
    for job_id in waiting:
        job_poll_enqueue(job_id=job_id)
    return len(queued) + len(waiting)


def jobs_fail_stuck() -> int:
    """Fails jobs processing longer than JOB_TIMEOUT_SECONDS (a worker died, an upstream hangs); returns holds."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_TIMEOUT_SECONDS)
    stuck = Job.objects.filter(status=Job.Status.PROCESSING, started_at__lt=cutoff).select_related("hold")[:500]
    failed = 0
    for job in stuck:
        if job_fail(job=job, code="timeout", message="The job took too long and was stopped."):
            failed += 1
            _upstream_cancel(job)
    return failed
