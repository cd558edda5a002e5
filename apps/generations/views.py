"""A person's generations: the history (/generations.php), one generation's page (/generation.php) and the
actions on a job (re-run, delete, cancel, under /generations/)."""

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from apps.billing.services import InsufficientCredits
from apps.catalog.models import AIModel, Category
from apps.catalog.services import InvalidInput, ModelUnavailable
from apps.generations.models import Job
from apps.generations.services import JobNotFinished, job_cancel, job_delete, job_retry
from apps.showroom.forms import PublishForm
from apps.showroom.models import Publication
from apps.showroom.services import job_publish_refusal
from kiwiwhale.lib.keyset import InvalidCursor, keyset_page

GENERATIONS_PAGE_SIZE = 20


@login_required
def generations_list(request):
    jobs = Job.objects.for_user(request.user).visible().with_outputs().select_related("publication")
    status = request.GET.get("status", "")
    category = request.GET.get("category", "")
    public_model = request.GET.get("model", "")
    if status in Job.Status.values:
        jobs = jobs.filter(status=status)
    if category in Category.values:
        jobs = jobs.filter(model__category=category)
    if public_model:
        jobs = jobs.filter(model__public_model=public_model)
    try:
        # Keyset pagination on the (user, created_at, id) index: page 100 costs what page 1 does.
        page, next_cursor = keyset_page(
            jobs, ordering=("-created_at", "-id"), cursor=request.GET.get("cursor", ""), limit=GENERATIONS_PAGE_SIZE
        )
    except InvalidCursor:
        return redirect(f"{reverse('generations')}{_without_cursor(request)}")
    for job in page:
        job.summary = _job_summary(job)
        job.publishable = not job_publish_refusal(job)
        job.published = _publication_of(job)
    context = {
        "jobs": page,
        "next_cursor": next_cursor,
        "is_first_page": not request.GET.get("cursor"),
        "statuses": Job.Status.choices,
        "categories": Category.choices,
        "models": AIModel.objects.filter(enabled=True).values_list("public_model", flat=True),
        "status": status,
        "category": category,
        "public_model": public_model,
        "filtered": bool(status or category or public_model),
    }
    return render(request, "generations/generations.html", context)


def _job_summary(job: Job) -> str:
    """The words a person recognises a job by: its prompt, or the text it read."""
    data = job.input if isinstance(job.input, dict) else {}
    return next((data[name] for name in ("prompt", "text") if isinstance(data.get(name), str) and data[name]), "")


def _without_cursor(request) -> str:
    params = request.GET.copy()
    params.pop("cursor", None)
    return f"?{params.urlencode()}" if params else ""


def _publication_of(job: Job) -> Publication | None:
    try:
        return job.publication
    except Publication.DoesNotExist:
        return None


def _queue_position(job: Job) -> int | None:
    """1 for the next queued job to start: jobs are taken oldest first, whoever owns them."""
    if job.status != Job.Status.QUEUED:
        return None
    return Job.objects.filter(status=Job.Status.QUEUED, created_at__lt=job.created_at).count() + 1


def _job_live(job: Job) -> dict:
    """What the generation page polls while a job runs (the outputs come with a reload once it ends)."""
    started = job.started_at or job.created_at
    upstream_position = (job.upstream_state or {}).get("queue_position") if job.status == "processing" else None
    return {
        "success": True,
        "job_id": job.pk,
        "status": job.status,
        "terminal": job.is_terminal,
        "queue_position": _queue_position(job),
        "upstream_queue_position": upstream_position if isinstance(upstream_position, int) else None,
        "elapsed_seconds": max(0, int((timezone.now() - started).total_seconds())),
        "cancelable": _cancelable(job),
    }


def _cancelable(job: Job) -> bool:
    # The rule of job_cancel: every unfinished job, queued or processing, with all its credits back.
    return not job.is_terminal


def generation_detail(request):
    """/generation.php?id=job_…: one generation, for its owner. A published one sends others to the showroom,
    which shows only what its author chose to show; anything else is a 404 (another account's job is not
    told apart from a job that does not exist)."""
    job_id = request.GET.get("id", "")[:64]
    job = None
    if request.user.is_authenticated and job_id:
        job = Job.objects.for_user(request.user).visible().with_outputs().filter(pk=job_id).first()
    if job is None:
        publication = Publication.objects.public().filter(job_id=job_id).first() if job_id else None
        if publication is not None:
            return redirect(publication.get_absolute_url())
        if not request.user.is_authenticated and job_id:
            return redirect_to_login(request.get_full_path())
        raise Http404("No such generation.")
    if request.GET.get("format") == "json":
        response = JsonResponse(_job_live(job))
        response["Cache-Control"] = "no-store"
        return response
    publication = _publication_of(job)
    outputs = list(job.outputs.all())
    poster = next((output.file.url for output in outputs if output.type == "image" and output.file), "")
    context = {
        "job": job,
        "outputs": outputs,
        "poster": poster,
        "summary": _job_summary(job),
        "input_json": json.dumps(job.input, indent=2, ensure_ascii=False),
        "live": _job_live(job),
        "publication": publication,
        "publish_refusal": job_publish_refusal(job),
        "publish_form": PublishForm(
            initial={
                "job_id": job.pk,
                "title": publication.title if publication else "",
                "show_prompt": publication.show_prompt if publication else False,
            }
        ),
        "run_seconds": _seconds_between(job.started_at, job.completed_at),
        "wait_seconds": _seconds_between(job.created_at, job.started_at),
    }
    return render(request, "generations/generation.html", context)


def _seconds_between(start, end) -> float | None:
    return round((end - start).total_seconds(), 1) if start and end else None


@login_required
@require_POST
def generation_rerun(request):
    """Runs the same model and input again as a new job, charged anew, and opens its page."""
    job = _own_job(request)
    try:
        new_job = job_retry(job=job)
    except InsufficientCredits:
        messages.error(request, "Not enough credits to run it again. Buy credits on the Billing page.")
    except ModelUnavailable:
        messages.error(request, f"{job.model.label} cannot run right now: no provider serves it.")
    except InvalidInput as exc:
        messages.error(request, f"The model's input rules changed since this ran: {exc}")
    else:
        messages.success(request, f"Started {new_job.pk}, a new run of {job.pk}.")
        return redirect(_generation_url(new_job.pk))
    return redirect(_generation_url(job.pk))


def _generation_url(job_id: str) -> str:
    return f"{reverse('generation')}?{urlencode({'id': job_id})}"


def _own_job(request) -> Job:
    job = Job.objects.for_user(request.user).visible().filter(pk=request.POST.get("job_id", "")).first()
    if job is None:
        raise Http404("No such generation.")
    return job


def _back_to_generations(request, *, allow_generation_page: bool = True):
    next_url = request.POST.get("next", "")
    allowed = ("/generations.php", "/generation.php") if allow_generation_page else ("/generations.php",)
    return redirect(next_url if next_url.startswith(allowed) else "generations")


@login_required
@require_POST
def generation_delete(request):
    job = _own_job(request)
    try:
        job_delete(job=job)
    except JobNotFinished:
        messages.error(request, f"{job.pk} is still {job.status}; wait until it finishes, or cancel it first.")
    else:
        messages.success(request, f"Deleted {job.pk} and its output files.")
        return _back_to_generations(request, allow_generation_page=False)  # its page is gone
    return _back_to_generations(request)


@login_required
@require_POST
def generation_cancel(request):
    job = _own_job(request)
    if job_cancel(job=job):
        messages.success(request, f"Canceled {job.pk}; its credits are back in your balance.")
    else:
        job.refresh_from_db(fields=["status"])  # it ended first: job_cancel stops every unfinished job
        messages.error(request, f"{job.pk} is already {job.status}.")
    return _back_to_generations(request)
