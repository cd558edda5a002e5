import functools
import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from apps.accounts import services as accounts_services
from apps.accounts.forms import ApiKeyCreateForm
from apps.accounts.models import ApiKey
from apps.billing.services import InsufficientCredits
from apps.catalog.models import AIModel, Category
from apps.catalog.services import InvalidInput, ModelUnavailable
from apps.generations.key_limits import keys_with_spend
from apps.generations.models import Job
from apps.generations.providers import provider_keys_available
from apps.generations.services import JobNotFinished, job_cancel, job_delete, job_retry
from apps.showroom.forms import PublishForm
from apps.showroom.models import Publication
from apps.showroom.services import UNPUBLISHABLE_CATEGORIES, job_publish_refusal
from apps.site import discovery, docs, schema_form, snippets
from kiwiwhale.lib.keyset import InvalidCursor, keyset_page

CATEGORY_ICONS = {
    "text-to-image": "image",
    "image-to-image": "image-edit",
    "text-to-video": "video",
    "image-to-video": "video",
    "text-to-audio": "audio",
    "audio-to-text": "transcribe",
    "text-to-text": "text",
    "chat": "chat",
    "tools": "tool",
}
GENERATIONS_PAGE_SIZE = 20
API_KEYS_ACTIVE_MAX = accounts_services.API_KEYS_ACTIVE_MAX


def _servable_models():
    return AIModel.objects.servable(provider_keys_available())


# --- Catalog -----------------------------------------------------------------------------------------------


def _search_text(model: AIModel) -> str:
    return f"{model.public_model} {model.label} {model.category} {model.description}".lower()


def home(request):
    models = list(_servable_models())  # one query, whatever the size of the catalog
    for model in models:
        model.icon = CATEGORY_ICONS.get(model.category, "tool")
        model.price_text = schema_form.price_label(model)
    present = {model.category for model in models}
    categories = [(value, label, CATEGORY_ICONS[value]) for value, label in Category.choices if value in present]
    query = request.GET.get("q", "").strip()[:100]
    category = request.GET.get("category", "")
    words = query.lower().split()
    shown = [
        model
        for model in models
        if (not category or model.category == category) and all(word in _search_text(model) for word in words)
    ]
    context = {"models": shown, "total": len(models), "categories": categories, "query": query, "category": category}
    return render(request, "site/home.html", context)


# --- Model pages -------------------------------------------------------------------------------------------

MODEL_TABS = [
    ("model", "Overview", "site:model_detail"),
    ("playground", "Playground", "site:model_playground"),
    ("api", "API", "site:model_api"),
    ("docs", "Docs", "site:model_docs"),
    ("code", "Code", "site:model_code"),
]


def _needs_model(view):
    """A model page without ?model= (e.g. /model.php typed by hand) opens the catalog, the list of models."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.GET.get("model", "").strip():
            return redirect("site:home")
        return view(request, *args, **kwargs)

    return wrapped


def _model_context(request, tab: str) -> dict:
    public_model = request.GET.get("model", "").strip()
    model = AIModel.objects.filter(public_model=public_model, enabled=True).first() if public_model else None
    if model is None:
        raise Http404("No such model.")
    servable = _servable_models().filter(pk=model.pk).exists()
    return {
        "model": model,
        "servable": servable,
        "icon": CATEGORY_ICONS.get(model.category, "tool"),
        "price_text": schema_form.price_label(model),
        "tab": tab,
        "tabs": [(key, label, f"{reverse(url)}?model={model.public_model}") for key, label, url in MODEL_TABS],
        "base_url": discovery.instance_base_url(request),
        "example_json": json.dumps({"model": model.public_model, "input": schema_form.example_input(model)}, indent=2),
    }


@_needs_model
def model_detail(request):
    context = _model_context(request, "model")
    context["fields"] = schema_form.form_fields(context["model"])
    return render(request, "site/model_detail.html", context)


@_needs_model
def model_playground(request):
    context = _model_context(request, "playground")
    model = context["model"]
    initial = {}
    rerun = request.GET.get("rerun", "")
    if rerun and request.user.is_authenticated:
        # Only the account's own jobs: another account's input is never shown.
        job = Job.objects.for_user(request.user).visible().filter(pk=rerun, model=model).only("input").first()
        if job is not None:
            initial = job.input
            context["rerun_of"] = rerun
    resume = request.GET.get("job", "")[:64]
    if resume and request.user.is_authenticated:
        # ?job= carries the last run across a reload; only the account's own job of this model is shown.
        resumed = Job.objects.for_user(request.user).visible().filter(pk=resume, model=model).only("input").first()
        if resumed is not None:
            context["resume_job"] = resumed.pk
            initial = initial or resumed.input
    context["publishable"] = model.category not in UNPUBLISHABLE_CATEGORIES
    upload_available = _servable_models().filter(public_model=schema_form.UPLOAD_MODEL).exists()
    context.update(
        fields=schema_form.form_fields(model, initial=initial, upload_available=upload_available),
        price=schema_form.price_descriptor(model),
        upload_model=schema_form.UPLOAD_MODEL,
        upload_max_bytes=_upload_max_bytes(),
        remix_id=request.GET.get("remix", "")[:64],
    )
    return render(request, "site/model_playground.html", context)


def _upload_max_bytes() -> int:
    # A file travels base64-encoded inside the JSON body, which Django caps at DATA_UPLOAD_MAX_MEMORY_SIZE.
    body_max = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    limits = [settings.FETCH_MAX_BYTES] + ([(body_max - 4096) * 3 // 4] if body_max else [])
    return max(0, min(limits))


@_needs_model
def model_api(request):
    context = _model_context(request, "api")
    context["fields"] = schema_form.form_fields(context["model"])
    context["schema_json"] = json.dumps(context["model"].input_schema, indent=2)
    return render(request, "site/model_api.html", context)


@_needs_model
def model_docs(request):
    context = _model_context(request, "docs")
    context["fields"] = schema_form.form_fields(context["model"])
    return render(request, "site/model_docs.html", context)


@_needs_model
def model_code(request):
    context = _model_context(request, "code")
    model = context["model"]
    key = ApiKey.objects.active().filter(user=request.user).first() if request.user.is_authenticated else None
    context["key"] = key
    context["samples"] = snippets.code_samples(
        base_url=context["base_url"],
        public_model=model.public_model,
        example=schema_form.example_input(model),
        key_prefix=key.prefix if key else None,
    )
    return render(request, "site/model_code.html", context)


# --- Generations -------------------------------------------------------------------------------------------


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
        return redirect(f"{reverse('site:generations')}{_without_cursor(request)}")
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
    return render(request, "site/generations.html", context)


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
    # The rule of job_cancel: queued always; processing only while it waits on an upstream provider.
    return job.status == Job.Status.QUEUED or (job.status == Job.Status.PROCESSING and job.poll_at is not None)


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
    return render(request, "site/generation.html", context)


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
    return f"{reverse('site:generation')}?{urlencode({'id': job_id})}"


def _own_job(request) -> Job:
    job = Job.objects.for_user(request.user).visible().filter(pk=request.POST.get("job_id", "")).first()
    if job is None:
        raise Http404("No such generation.")
    return job


def _back_to_generations(request, *, allow_generation_page: bool = True):
    next_url = request.POST.get("next", "")
    allowed = ("/generations.php", "/generation.php") if allow_generation_page else ("/generations.php",)
    return redirect(next_url if next_url.startswith(allowed) else "site:generations")


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
        job.refresh_from_db(fields=["status"])
        if job.is_terminal:
            messages.error(request, f"{job.pk} is already {job.status}.")
        else:
            messages.error(
                request,
                f"{job.pk} is {job.status} on this instance's own worker and cannot be stopped half-way; "
                "only queued jobs, and jobs waiting on an upstream provider, can be canceled.",
            )
    return _back_to_generations(request)


# --- API keys ----------------------------------------------------------------------------------------------


NEW_KEY_SESSION = "api_key_new"


@login_required
def api_key_list(request):
    """Create-and-redirect (POST → 303 → GET): a reload never makes a second key. The raw key rides in the
    session to the next page view only, which pops it: it is shown exactly once and never stored elsewhere."""
    form = ApiKeyCreateForm()
    status = 200
    if request.method == "POST":
        form = ApiKeyCreateForm(request.POST)
        if not form.is_valid():
            status = 400
        else:
            name = form.cleaned_data["name"] or "default"
            try:
                created, raw_key = accounts_services.api_key_create(user=request.user, name=name, **form.limits())
            except accounts_services.KeyRefused as exc:
                form.add_error(None, str(exc))
                status = 400
            else:
                request.session[NEW_KEY_SESSION] = {"id": created.pk, "raw": raw_key}
                return redirect(reverse("site:api_key"), permanent=False)
    new_key = request.session.pop(NEW_KEY_SESSION, None) if request.method == "GET" else None
    keys = keys_with_spend(ApiKey.objects.filter(user=request.user).order_by("revoked_at", "-created_at"))
    created = next((key for key in keys if new_key and key.pk == new_key.get("id")), None)
    raw_key = new_key["raw"] if created is not None else None
    context = {
        "form": form,
        "keys": keys,
        "created": created,
        "raw_key": raw_key,
        "base_url": discovery.instance_base_url(request),
    }
    response = render(request, "site/api_key.html", context, status=status)
    response["Cache-Control"] = "no-store"  # the page may hold a raw key; never from a cache or the back button
    return response


@login_required
@require_POST
def api_key_revoke(request):
    key_id = request.POST.get("key_id", "")
    key = ApiKey.objects.filter(user=request.user, pk=key_id).first() if key_id.isdigit() else None
    if key is None:
        raise Http404("No such key.")
    if key.is_active:
        accounts_services.api_key_revoke(key=key)
        messages.success(request, f"Revoked {key.prefix}… ({key.name}). Requests with it now get 401.")
    else:
        messages.info(request, f"{key.prefix}… was already revoked.")
    return redirect("site:api_key")


# --- Docs and discovery ------------------------------------------------------------------------------------


def docs_index(request):
    return redirect("site:docs", slug=docs.PUBLISHED[0])


def favicon(request):
    return redirect(static("icons/favicon.svg"), permanent=True)


def docs_page(request, slug: str):
    if slug not in docs.PAGES:
        raise Http404("No such page.")
    page = docs.doc_render(slug, base_url=discovery.instance_base_url(request))
    if not page.exists and slug not in docs.PUBLISHED:
        raise Http404("No such page.")
    return render(request, "site/docs_page.html", {"page": page, "menu": docs.doc_menu()})


def llms_txt(request):
    text = discovery.llms_txt(base_url=discovery.instance_base_url(request), models=_servable_models())
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    return response


def agent_json(request):
    body = discovery.agent_descriptor(
        base_url=discovery.instance_base_url(request), model_count=_servable_models().count()
    )
    response = JsonResponse(body, json_dumps_params={"indent": 2})
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"  # public metadata, read by browser-based agents too
    return response


# --- Plumbing ----------------------------------------------------------------------------------------------


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"success": False, "error": "not_found", "message": f"No endpoint at {request.path}."}, status=404
        )
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"success": False, "error": "internal_error", "message": "The server could not finish this request."},
            status=500,
        )
    # No request context: the failure may be the database that the context processors read.
    return HttpResponseServerError(loader.get_template("500.html").render())
