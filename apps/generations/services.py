import logging
import os
import secrets
import socket
import threading
from contextlib import contextmanager
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.billing.services import hold_place, hold_refund, hold_release, hold_settle
from apps.catalog.models import AIModel, ModelRoute
from apps.catalog.services import (
    CATALOG_GENERATION_KEY,
    ModelUnavailable,
    catalog_generation,
    input_validate,
    model_routes,
    provider_health_record,
)
from apps.generations.key_limits import job_key_limits_check
from apps.generations.models import Job, Output
from apps.generations.providers import (
    LOCAL,
    OutputData,
    Pending,
    ProviderError,
    RunResult,
    provider_for,
    provider_keys_available,
)
from apps.generations.streams import text_publisher
from kiwiwhale.celery import queue_size
from kiwiwhale.lib.ratelimit import rate_limit_hit
from kiwiwhale.lib.redis_pool import shared_cache_on
from kiwiwhale.lib.rows import RowInsert
from kiwiwhale.lib.tasks import task_enqueue
from kiwiwhale.lib.unstorable import data_problem

logger = logging.getLogger(__name__)


def routes_usable(model: AIModel) -> list[ModelRoute]:
    keys = provider_keys_available()
    return [route for route in model_routes(model) if route.enabled and route.provider in keys]


class CostOverMax(Exception):
    """The job would cost more than the caller's `max_cost_credits`; nothing was charged."""

    def __init__(self, *, cost_micro: int, max_cost_micro: int):
        self.cost_micro = cost_micro
        self.max_cost_micro = max_cost_micro
        super().__init__("This job would cost more than max_cost_credits.")


def job_quote(*, model: AIModel, input: dict) -> tuple[dict, int]:
    """The input as a job would run it (validated, defaults applied) and what it would be charged, in micro."""
    validated = input_validate(model=model, data=input)
    return validated, model.cost_micro(validated)


def job_create(
    *,
    user,
    model: AIModel,
    input: dict,
    api_key=None,
    webhook_url: str = "",
    webhook_events: list[str] | None = None,
    max_cost_micro: int | None = None,
    deadline_at=None,
    stream_text: bool = False,
) -> Job:
    """Validates and prices the input, then holds the cost and creates the job together; enqueues after commit.

    `max_cost_micro`: refuse (CostOverMax) a job that would cost more. `deadline_at`: cancel the job, its hold
    returned, if it has not finished by then (Cancel-After). `stream_text`: publish its text as the upstream
    sends it (apps/generations/streams.py).
    """
    validated, cost_micro = job_quote(model=model, input=input)
    if not routes_usable(model):
        raise ModelUnavailable(model.public_model)
    if max_cost_micro is not None and cost_micro > max_cost_micro:
        raise CostOverMax(cost_micro=cost_micro, max_cost_micro=max_cost_micro)
    if cost_micro == 0:
        free_work_check(user=user)
    job = Job(
        user=user,
        api_key=api_key,
        model=model,
        input=validated,
        cost_micro=cost_micro,
        webhook_url=webhook_url,
        webhook_events=webhook_events or [],
        deadline_at=deadline_at,
        stream_text=stream_text,
    )
    with transaction.atomic():
        job_key_limits_check(api_key=api_key, model=model, cost_micro=cost_micro)  # its locks last until commit
        job.hold = hold_place(
            user=user,
            amount_micro=cost_micro,
            key=f"job:{job.pk}",
            reference=job.pk,
            description=model.public_model,
            key_is_new=True,  # the job's id was just drawn at random
            paid_row=RowInsert.of(job, connection=transaction.get_connection(), exclude=("hold",)),
        )
        if not job.hold.paid_row_written:
            job.save(force_insert=True)
        transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
        if deadline_at is not None:
            transaction.on_commit(lambda: _overdue_sweep_enqueue(at=deadline_at))
    return job


class QuotaExceeded(Exception):
    """Free work refused: too many free jobs this hour (`retry_after_seconds`), or too many bytes stored."""

    def __init__(self, message: str, *, retry_after_seconds: int | None = None):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


def free_work_check(*, user) -> None:
    """Jobs that cost nothing (kiwiwhale/upload) are what a zero-credit account could fill workers and disks with:
    each account may run RATE_FREE_JOBS_ACCOUNT of them, and none once its outputs hold QUOTA_STORED_BYTES_ACCOUNT
    (the last one may take it over the quota by at most one file). Paid work is limited by its price."""
    stored = Output.objects.filter(job__user=user, job__deleted_at__isnull=True).aggregate(total=Sum("file_size"))
    if (stored["total"] or 0) >= settings.QUOTA_STORED_BYTES_ACCOUNT:
        raise QuotaExceeded(
            f"This account stores {settings.QUOTA_STORED_BYTES_ACCOUNT:,} bytes of outputs or more, its quota for"
            " free uploads; delete some generations first."
        )
    wait = rate_limit_hit("free-jobs", f"user:{user.pk}", rate=settings.RATE_FREE_JOBS_ACCOUNT)
    if wait:
        raise QuotaExceeded(f"Too many free jobs (uploads); retry in {wait} s.", retry_after_seconds=wait)


def job_enqueue(*, job_id: str) -> bool:
    """Sends the job's message and records when it reached the broker. If the broker is down, `enqueued_at` stays
    empty and jobs_requeue_lost sends it once the broker is back."""
    from apps.generations.tasks import job_run as job_run_task

    if not task_enqueue(job_run_task, job_id):
        return False
    # The statement Job.objects.filter(pk=…, status=QUEUED).update(enqueued_at=…) makes, without building it: that
    # was 7 % of a submit's CPU.
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(_JOB_ENQUEUED_SQL, [now, job_id, Job.Status.QUEUED])
    return True


_JOB_ENQUEUED_SQL = "UPDATE generations_job SET enqueued_at = %s WHERE id = %s AND status = %s"


def job_run(*, job_id: str) -> None:
    """Claims a queued job and runs it through its routes in priority order; the outcome is recorded once.

    The claim takes a lease that a thread of this worker renews while the job runs (job_lease_kept).
    """
    job = Job.objects.select_related("model", "hold").filter(pk=job_id, status=Job.Status.QUEUED).first()
    if job is None:
        return  # a duplicate delivery, or a job already finished or cancelled
    routes = routes_usable(job.model)
    now = timezone.now()
    claim = {
        "started_at": now,
        "lease_owner": _lease_owner_new(),
        "lease_expires_at": now + _lease_length(),
        "requeues": 0,
    }
    if routes:  # the route it starts on, recorded by the claim itself: one UPDATE and one commit less
        claim.update(provider=routes[0].provider, route=routes[0], poll_at=None)
    # Conditional: a job canceled since it was read is not claimed (the read fields never change once queued).
    claimed = Job.objects.filter(pk=job_id).transition(
        source=Job.Status.QUEUED, target=Job.Status.PROCESSING, attempts=F("attempts") + 1, **claim
    )
    if not claimed:
        return
    for field, value in {**claim, "status": Job.Status.PROCESSING, "attempts": job.attempts + 1}.items():
        setattr(job, field, value)
    job_event_notify(job=job, event="started")
    with job_lease_kept(job_id=job_id, owner=job.lease_owner):
        _job_try_routes(job, routes, first_recorded=bool(routes))


def _lease_owner_new() -> str:
    # Which worker holds the job (for operators), and a token unique to this run (for the conditional updates).
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(6)}"


def _lease_length() -> timedelta:
    return timedelta(seconds=settings.JOB_LEASE_SECONDS)


@contextmanager
def job_lease_kept(*, job_id: str, owner: str):
    """Renews the job's lease from a thread of its own while the body runs.

    A thread, not a renewal at each step: one step (a local render, one synchronous upstream call) can block for
    minutes, longer than a lease short enough to notice a dead worker quickly. The thread dies with its process,
    which is exactly when the lease must lapse; a hung but living run is stopped by the time limits instead.
    """
    stop = threading.Event()
    thread = threading.Thread(
        target=_lease_renew_until, args=(job_id, owner, stop), name=f"lease-{job_id}", daemon=True
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _lease_renew_until(job_id: str, owner: str, stop: threading.Event) -> None:
    try:
        while not stop.wait(settings.JOB_LEASE_SECONDS / 3):
            try:
                kept = Job.objects.filter(pk=job_id, status=Job.Status.PROCESSING, lease_owner=owner).update(
                    lease_expires_at=timezone.now() + _lease_length()
                )
            except DatabaseError:
                logger.warning("Job %s: the lease could not be renewed; trying again", job_id, exc_info=True)
                connection.close()  # a dropped connection is opened anew at the next renewal
                continue
            if not kept:
                return  # finished, or recovered by the sweeper: the run's result will be refused
    finally:
        connection.close()  # this thread's own connection


def job_poll(*, job_id: str) -> None:
    """Checks a long upstream job once: completes it, waits again, fails it (a final upstream error), or, when the
    upstream stays unavailable, cancels the upstream request and falls back to the next route."""
    job = Job.objects.select_related("model", "hold", "route").filter(pk=job_id, status=Job.Status.PROCESSING).first()
    if job is None or job.route is None:
        return
    # Of two deliveries of one poll message, only one calls the upstream; while it does, it holds the job's lease.
    now = timezone.now()
    owner = _lease_owner_new()
    poll_guard = now + timedelta(seconds=max(60, settings.JOB_POLL_INTERVAL_SECONDS * 4))
    if not Job.objects.filter(pk=job.pk, status=Job.Status.PROCESSING, poll_at=job.poll_at).update(
        poll_at=poll_guard, lease_owner=owner, lease_expires_at=now + _lease_length()
    ):
        return
    job.lease_owner = owner
    with job_lease_kept(job_id=job.pk, owner=owner):
        _job_poll_once(job)


def _job_poll_once(job: Job) -> None:
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
        if not exc.retryable:  # a final answer (content policy, invalid input): no other route runs it
            job_fail(job=job, code=exc.code, message=exc.message)
            return
        _upstream_cancel(job)  # abandoned for the next route: ask it to stop, so it is not run (and paid) twice
        _job_try_routes(job, _routes_after(job.model, route), first_error=exc)
        return
    except SoftTimeLimitExceeded:
        job_fail(job=job, code="timeout", message=TIMEOUT_MESSAGE, owner=job.lease_owner)
        return
    except Exception:
        logger.exception("Job %s: polling crashed", job.pk)
        job_fail(job=job, code="internal_error", message="The engine failed unexpectedly.", owner=job.lease_owner)
        return
    if isinstance(outcome, Pending):
        _job_wait(job, route, outcome)
    else:
        provider_health_record(slug=route.provider)
        _job_complete(job=job, result=outcome, provider=route.provider)


POLL_ERROR_BUDGET = 5  # transient errors while polling one upstream job before its route counts as failed
TIMEOUT_MESSAGE = "The job took too long and was stopped."


def _job_try_routes(
    job: Job, routes: list[ModelRoute], first_error: ProviderError | None = None, first_recorded: bool = False
) -> None:
    """`first_recorded`: the claim already recorded the first route on the job."""
    # Called outside any transaction: a provider may take minutes.
    last_error = first_error or ProviderError("No provider can serve this model right now.", code="model_unavailable")
    for index, route in enumerate(routes):
        if index or not first_recorded:
            # poll_at empty: this run holds the job itself (a lapsed lease then means a lost run, not a lost poll).
            Job.objects.filter(pk=job.pk).update(provider=route.provider, route=route, poll_at=None)
        try:
            adapter = provider_for(route.provider)
            streamed = {"on_text": text_publisher(job_id=job.pk)} if job.stream_text and adapter.streams_text else {}
            outcome = adapter.run(upstream_model=route.upstream_model, params=route.params, input=job.input, **streamed)
        except ProviderError as exc:
            provider_health_record(slug=route.provider, error=exc.message)
            last_error = exc
            if not exc.retryable:
                break
            logger.warning("Job %s: route %s failed (%s); trying the next", job.pk, route, exc.message)
            continue
        except SoftTimeLimitExceeded:  # the task's time limit (CELERY_TASK_SOFT_TIME_LIMIT) interrupted the run
            job_fail(job=job, code="timeout", message=TIMEOUT_MESSAGE, owner=job.lease_owner)
            return
        except Exception:
            logger.exception("Job %s crashed", job.pk)
            job_fail(job=job, code="internal_error", message="The engine failed unexpectedly.", owner=job.lease_owner)
            return
        if route.provider != LOCAL:  # local engines have no account to record it on
            provider_health_record(slug=route.provider)
        if isinstance(outcome, Pending):
            _job_wait(job, route, outcome)
        else:
            _job_complete(job=job, result=outcome, provider=route.provider)
        return
    job_fail(job=job, code=last_error.code, message=last_error.message, owner=job.lease_owner)


def _routes_after(model: AIModel, route: ModelRoute) -> list[ModelRoute]:
    routes = routes_usable(model)
    ids = [r.pk for r in routes]
    return routes[ids.index(route.pk) + 1 :] if route.pk in ids else []


def _job_wait(job: Job, route: ModelRoute, pending: Pending) -> None:
    delay = pending.retry_after if pending.retry_after is not None else settings.JOB_POLL_INTERVAL_SECONDS
    # While it waits on the upstream no worker holds it: the lease ends, the poll messages take over.
    updated = Job.objects.filter(pk=job.pk, status=Job.Status.PROCESSING, lease_owner=job.lease_owner).update(
        route=route,
        provider=route.provider,
        upstream_id=pending.upstream_id or job.upstream_id,
        upstream_state=pending.state,
        poll_at=timezone.now() + timedelta(seconds=delay),
        lease_owner="",
        lease_expires_at=None,
        requeues=0,
    )
    if updated:
        job_poll_enqueue(job_id=job.pk, delay=delay)
    elif pending.state:
        # Canceled (or failed) while the upstream was accepting it: nobody will poll it, so ask it to stop.
        _upstream_stop(route, pending.state, job.pk)


def job_poll_enqueue(*, job_id: str, delay: float = 0) -> None:
    from apps.generations.tasks import job_poll as job_poll_task

    task_enqueue(job_poll_task, job_id, countdown=delay)  # if lost, jobs_requeue_lost polls it again


def _job_complete(*, job: Job, result: RunResult, provider: str) -> None:
    """The one way a job completes: its outputs and its charge are committed together, by the run holding it."""
    # Text the database cannot hold (a NUL in an uploaded text file) would fail the write below after the files
    # were stored: fail the job before writing anything.
    problem = data_problem([[data.text, data.data] for data in result.outputs], root="outputs")
    if problem:
        job_fail(job=job, code="provider_error", message=f"The output cannot be stored: it {problem[1]}.")
        return
    # Files are written before the transaction, so their names are recorded on the job first: if the worker dies
    # before the commit, the lease sweeper removes them (staged_files); if the run lost the job, it removes them.
    rows = [_output_row(job, position, data) for position, data in enumerate(result.outputs)]
    staged = [row.file.name for row in rows if row.file.name]
    if staged and not _running(job).update(staged_files=staged):
        return  # the job was recovered or ended meanwhile: write nothing
    # Should this raise (a lost database, the time limit), the files stay listed on the job: the commit may even
    # have happened, so only the sweeper that recovers the job, or job_fail, removes them.
    for row, data in zip(rows, result.outputs, strict=True):
        if row.file.name:
            _staged_write(row, data.content)
    with transaction.atomic():
        finished = _running(job).transition(
            source=Job.Status.PROCESSING,
            target=Job.Status.COMPLETED,
            completed_at=timezone.now(),
            provider=provider,
            usage=result.usage,
            staged_files=[],
            lease_expires_at=None,
        )
        if finished:
            Output.objects.bulk_create(rows)
            if job.hold_id:
                hold_settle(hold=job.hold, reference=job.pk)
            job_event_notify(job=job, event="completed")
    if not finished:
        # Timed out, cancelled or recovered by a sweeper while running: keep nothing, charge nothing.
        _files_delete(staged)


def _running(job: Job):
    """The job, while the run that loaded it still holds it."""
    return Job.objects.filter(pk=job.pk, status=Job.Status.PROCESSING, lease_owner=job.lease_owner)


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
        row.file.name = row.file.field.generate_filename(row, data.file_name)  # a fresh random folder
        row.file_size = len(data.content)
    return row


def _staged_write(row: Output, content: bytes) -> None:
    saved = row.file.storage.save(row.file.name, ContentFile(content), max_length=row.file.field.max_length)
    if saved != row.file.name:  # never with the random folders; should a storage rename it, keep both removable
        Job.objects.filter(pk=row.job_id).update(staged_files=[*_staged_of(row.job_id), saved])
        row.file.name = saved


def _staged_of(job_id: str) -> list[str]:
    return Job.objects.filter(pk=job_id).values_list("staged_files", flat=True).first() or []


def _files_delete(names: list[str]) -> None:
    storage = Output._meta.get_field("file").storage
    for name in names:
        try:
            storage.delete(name)
        except Exception:
            logger.warning("Could not delete the staged file %s", name, exc_info=True)


def _staged_remove(job_id: str) -> None:
    """Deletes what an unfinished run wrote and never committed as outputs. Called inside the transaction that
    ended or recovered the job, which holds its row: should that transaction roll back, the job still lists them."""
    names = _staged_of(job_id)
    if names:
        _files_delete(names)
        Job.objects.filter(pk=job_id).update(staged_files=[])


def job_fail(*, job: Job, code: str, message: str, owner: str | None = None) -> bool:
    """The one way a job fails: it ends and its whole hold comes back. True if this call failed it.

    A run passes its `owner` token: a run that lost the job (its lease lapsed and the job went on elsewhere) then
    fails nothing. Files the unfinished run wrote are deleted.
    """
    unfinished = Job.objects.filter(pk=job.pk)
    if owner is not None:
        unfinished = unfinished.filter(lease_owner=owner)
    with transaction.atomic():
        failed = unfinished.transition(
            source=[Job.Status.QUEUED, Job.Status.PROCESSING],
            target=Job.Status.FAILED,
            completed_at=timezone.now(),
            error_code=code,
            error_message=message[:2000],
            lease_expires_at=None,
        )
        if failed:
            _staged_remove(job.pk)
            if job.hold_id:
                hold_release(hold=job.hold, reason=f"Job failed: {code}", reference=job.pk)
            job_event_notify(job=job, event="failed")
    return bool(failed)


def job_cancel(*, job: Job, code: str = "", message: str = "") -> bool:
    """The one way a job is cancelled: it ends and its whole hold comes back. True if this call cancelled it.

    One rule for queued and processing jobs: the account gets every credit back. An upstream that runs the job
    is asked to stop (where its API allows); a local engine mid-run finishes and its output is thrown away
    (`_job_complete` keeps nothing for a job no longer processing). `code`/`message` say why, e.g. a deadline.
    """
    with transaction.atomic():
        canceled = Job.objects.filter(pk=job.pk).transition(
            source=[Job.Status.QUEUED, Job.Status.PROCESSING],
            target=Job.Status.CANCELED,
            completed_at=timezone.now(),
            error_code=code,
            error_message=message[:2000],
            lease_expires_at=None,
        )
        if canceled and job.hold_id:
            hold_release(hold=job.hold, reason="Job canceled", reference=job.pk)
        if canceled:
            job_event_notify(job=job, event="canceled")
    if canceled:
        _upstream_cancel(job)
    return bool(canceled)


def _upstream_cancel(job: Job) -> None:
    job.refresh_from_db(fields=["route", "upstream_state"])
    if job.route_id is None or not job.upstream_state:
        return
    _upstream_stop(job.route, job.upstream_state, job.pk)


def _upstream_stop(route: ModelRoute, state: dict, job_id: str) -> None:
    try:
        provider_for(route.provider).cancel(upstream_model=route.upstream_model, params=route.params, state=state)
    except Exception:
        logger.warning("Job %s: the upstream could not be asked to stop", job_id, exc_info=True)


def job_delete(*, job: Job) -> None:
    """Hides a finished job from its owner's history; the row stays, as the record of what was charged.

    Its output files are deleted (they may be large, and nobody can reach them any more).
    """
    if not job.is_terminal:
        raise JobNotFinished(job.status)
    Job.objects.filter(pk=job.pk, deleted_at__isnull=True).update(deleted_at=timezone.now())
    job_answer_forget(job_id=job.pk)
    for output in job.outputs.all():
        if output.file:
            output.file.delete(save=False)


class JobNotFinished(Exception):
    pass


# A job that ended never changes again, but for its owner deleting it from their history and for the catalog
# renaming its model: its API answer is kept in the shared cache, so polling an ended job costs no query. Deletion
# leaves a tombstone under a name of its own (read in the same round trip), which no later fill can cover; the
# catalog's generation token, kept in the entry, makes a rename show at once.
JOB_ANSWER_CACHE_SECONDS = 3600


def _job_answer_names(job_id: str) -> tuple[str, str]:
    return f"jobanswer:{job_id}", f"jobanswer-gone:{job_id}"


def job_answer_cache_names(job_id: str) -> list[str]:
    """The cache entries job_answer_cached reads (none without the shared cache), for a caller that reads them
    together with its own in one round trip."""
    return [*_job_answer_names(job_id), CATALOG_GENERATION_KEY] if shared_cache_on() else []


def job_answer_cached(*, job_id: str, user_id: int, found: dict | None = None) -> tuple[dict | None, str | None]:
    """(the cached answer of `user_id`'s ended job or None, the catalog generation to keep a new one under).
    `found`: the entries of job_answer_cache_names, already read by the caller."""
    if not shared_cache_on():
        return None, None
    name, gone = _job_answer_names(job_id)
    if found is None:
        found = cache.get_many(job_answer_cache_names(job_id))
    generation = catalog_generation(found.get(CATALOG_GENERATION_KEY))
    entry = found.get(name)
    if gone in found or not isinstance(entry, tuple):
        return None, generation
    owner, entry_generation, body = entry
    return (body if owner == user_id and entry_generation == generation else None), generation


def job_answer_keep(*, job: Job, body: dict, generation: str | None) -> None:
    """Keeps the answer of an ended, visible job (`body`: the serializer's, output URLs as the storage gives them)."""
    if generation is None or job.status not in Job.TERMINAL or job.deleted_at is not None:
        return
    cache.set(_job_answer_names(job.pk)[0], (job.user_id, generation, body), timeout=JOB_ANSWER_CACHE_SECONDS)


def job_answer_forget(*, job_id: str) -> None:
    if shared_cache_on():
        # Outlives any answer a poll that read the job before the deletion may still write.
        cache.set(_job_answer_names(job_id)[1], True, timeout=2 * JOB_ANSWER_CACHE_SECONDS)


def job_retry(*, job: Job) -> Job:
    """A new job with the same model and input, charged anew; the original stays as it was."""
    return job_create(
        user=job.user, model=job.model, input=job.input, webhook_url=job.webhook_url, webhook_events=job.webhook_events
    )


# Who hears that a job started or ended, by dotted path, imported when first called: the listeners' apps import
# generations, so generations imports none of them (no cycle).
JOB_EVENT_LISTENERS = (
    "apps.generations.waits.job_event_wake",
    "apps.generations.streams.job_event_text_end",
    "apps.webhooks.services.webhook_job_event",
    "apps.generations.apis.job_event_answer_keep",
)


# Listeners that need no savepoint from job_event_notify: the waits', the text streams' and the answer cache's ones
# write nothing to the database, the webhooks' one opens its own, only when it has a delivery to record (two round
# trips less per event otherwise). A listener added to JOB_EVENT_LISTENERS gets a savepoint unless it is named here too.
JOB_EVENT_LISTENERS_SAFE = frozenset(
    (
        "apps.generations.waits.job_event_wake",
        "apps.generations.streams.job_event_text_end",
        "apps.webhooks.services.webhook_job_event",
        "apps.generations.apis.job_event_answer_keep",
    )
)


def job_event_notify(*, job: Job, event: str) -> None:
    """Tells the listeners that `job` started, completed, failed or was canceled (WEBHOOK_EVENTS).

    Called inside the transaction of the transition, so what a listener records commits with it (or not at all).
    Each runs in a savepoint (its own, for JOB_EVENT_LISTENERS_SAFE): a listener that fails is logged and never
    undoes the transition.
    """
    for path in JOB_EVENT_LISTENERS:
        try:
            if path in JOB_EVENT_LISTENERS_SAFE:
                import_string(path)(job=job, event=event)
            else:
                with transaction.atomic():
                    import_string(path)(job=job, event=event)
        except Exception:
            logger.exception("Job %s: listener %s failed on %s", job.pk, path, event)


def job_refund(*, job: Job, reason: str, created_by=None) -> bool:
    """An admin returns what a completed job charged. True if this call refunded it."""
    if job.status != Job.Status.COMPLETED or not job.hold_id:
        return False
    return hold_refund(hold=job.hold, reason=reason, created_by=created_by, reference=job.pk)


ENQUEUE_GRACE_SECONDS = 10  # between a job's commit and its first send; after that an unsent message is lost
REQUEUE_BACKOFF_DOUBLINGS = 6  # a message re-sent again and again waits at most 64 times JOB_REQUEUE_AFTER_SECONDS


def jobs_requeue_lost() -> int:
    """Sends again only the messages that are really lost, so a backlog never multiplies the broker's messages:

    - a queued job whose message never reached the broker (it was down at submit, or the process died between
      commit and enqueue): at once, after a short grace;
    - a queued job whose message did reach it: only while the broker's queue holds fewer messages than the jobs
      waiting on one (some were lost, e.g. a broker restarted without persistence), the oldest first, each once
      per back-off (JOB_REQUEUE_AFTER_SECONDS, doubled by every re-send);
    - a job parked on an upstream whose poll is overdue by JOB_REQUEUE_AFTER_SECONDS: once per back-off.
    Returns how many messages it sent.
    """
    now = timezone.now()
    sent = 0
    grace = now - timedelta(seconds=ENQUEUE_GRACE_SECONDS)
    never_sent = Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__isnull=True, created_at__lt=grace)
    never_sent = never_sent.order_by("created_at")
    for job_id in never_sent.values_list("pk", flat=True)[:500]:
        if not job_enqueue(job_id=job_id):
            return sent  # the broker is still down: the next sweep tries again
        sent += 1
    sent += _jobs_requeue_missing(now)
    overdue = Job.objects.filter(
        status=Job.Status.PROCESSING, poll_at__lt=now - _requeue_after(0), lease_expires_at__isnull=True
    ).order_by("poll_at")
    for job_id, poll_at, requeues in overdue.values_list("pk", "poll_at", "requeues")[:500]:
        if poll_at < now - _requeue_after(requeues):
            Job.objects.filter(pk=job_id, poll_at=poll_at).update(poll_at=now, requeues=F("requeues") + 1)
            job_poll_enqueue(job_id=job_id)
            sent += 1
    return sent


def _jobs_requeue_missing(now) -> int:
    waiting = Job.objects.filter(status=Job.Status.QUEUED, enqueued_at__isnull=False)
    in_broker = queue_size(settings.CELERY_TASK_DEFAULT_QUEUE)
    if in_broker is None:
        return 0  # the broker cannot tell: presume nothing lost
    # Messages a worker has reserved but not started are not in the queue any more; the back-off bounds those.
    missing = waiting.count() - in_broker
    if missing <= 0:
        return 0  # a backlog: every waiting job still has its message
    sent = 0
    oldest = waiting.filter(enqueued_at__lt=now - _requeue_after(0)).order_by("enqueued_at")
    for job_id, enqueued_at, requeues in oldest.values_list("pk", "enqueued_at", "requeues")[: min(missing, 500)]:
        if enqueued_at >= now - _requeue_after(requeues):
            continue
        if not job_enqueue(job_id=job_id):
            break
        Job.objects.filter(pk=job_id).update(requeues=F("requeues") + 1)
        sent += 1
    return sent


def _requeue_after(requeues: int) -> timedelta:
    return timedelta(seconds=settings.JOB_REQUEUE_AFTER_SECONDS * 2 ** min(requeues, REQUEUE_BACKOFF_DOUBLINGS))


def jobs_recover_lapsed() -> int:
    """Recovers the jobs whose worker stopped renewing their lease (killed, its machine lost); see job_recover."""
    lapsed = Job.objects.filter(status=Job.Status.PROCESSING, lease_expires_at__lt=timezone.now())
    return sum(1 for job_id in lapsed.values_list("pk", flat=True)[:500] if job_recover(job_id=job_id))


WORKER_LOST_MESSAGE = "The worker running the job stopped; your credits were returned."


def job_recover(*, job_id: str) -> str | None:
    """One job whose lease lapsed. The files its lost run wrote are removed, then it is

    - "polled" again if the run was polling an upstream (the upstream still has the job);
    - "retried" on another worker if nothing may have reached a paid upstream (a local engine ran it, or no route
      had started) and it has attempts left (JOB_MAX_ATTEMPTS): its hold stays, so it is charged at most once;
    - "failed" with `worker_lost` and its whole hold released otherwise: a run that may have reached an upstream
      is never re-sent blindly.
    Returns which, or None when the job is not (or no longer) lapsed.
    """
    with transaction.atomic():
        job = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(pk=job_id, status=Job.Status.PROCESSING, lease_expires_at__lt=timezone.now())
            .first()
        )
        if job is None:
            return None
        logger.warning("Job %s: the lease of %s lapsed (attempt %s)", job.pk, job.lease_owner, job.attempts)
        _staged_remove(job.pk)
        lapsed = Job.objects.filter(pk=job.pk, lease_owner=job.lease_owner)
        if job.poll_at is not None:
            lapsed.update(lease_owner="", lease_expires_at=None, poll_at=timezone.now())
            transaction.on_commit(lambda: job_poll_enqueue(job_id=job.pk))
            return "polled"
        if job.attempts < settings.JOB_MAX_ATTEMPTS and job.provider in ("", LOCAL):
            lapsed.transition(
                source=Job.Status.PROCESSING,
                target=Job.Status.QUEUED,
                lease_owner="",
                lease_expires_at=None,
                enqueued_at=None,
                provider="",
                route=None,
            )
            transaction.on_commit(lambda: job_enqueue(job_id=job.pk))
            return "retried"
        job_fail(job=job, code="worker_lost", message=WORKER_LOST_MESSAGE, owner=job.lease_owner)
        return "failed"


def jobs_fail_stuck() -> int:
    """Fails jobs processing longer than JOB_TIMEOUT_SECONDS (a hung run, an upstream that never ends); returns
    their holds. A dead worker's job is recovered much sooner, by its lapsed lease (jobs_recover_lapsed)."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_TIMEOUT_SECONDS)
    stuck = Job.objects.filter(status=Job.Status.PROCESSING, started_at__lt=cutoff).select_related("hold")[:500]
    failed = 0
    for job in stuck:
        if job_fail(job=job, code="timeout", message=TIMEOUT_MESSAGE):
            failed += 1
            _upstream_cancel(job)
    return failed


def jobs_cancel_overdue() -> int:
    """Cancels every unfinished job past its Cancel-After deadline (`deadline_at`); their holds come back."""
    now = timezone.now()
    overdue = Job.objects.filter(
        deadline_at__lte=now, status__in=[Job.Status.QUEUED, Job.Status.PROCESSING]
    ).select_related("hold", "model")[:500]
    canceled = 0
    for job in overdue:
        limit = job.deadline_at - job.created_at
        if job_cancel(
            job=job,
            code="deadline_exceeded",
            message=f"Canceled by Cancel-After: not finished within {int(limit.total_seconds())} s.",
        ):
            canceled += 1
    return canceled


def _overdue_sweep_enqueue(*, at) -> None:
    from apps.generations.tasks import jobs_cancel_overdue as jobs_cancel_overdue_task

    # At the deadline itself; the beat schedule runs the same sweep in case this message is lost.
    delay = max(0.0, (at - timezone.now()).total_seconds()) + 0.2
    task_enqueue(jobs_cancel_overdue_task, countdown=delay)
