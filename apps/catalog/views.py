"""The five pages of a model: overview, playground, API, docs and code (kiwiwhale.com's /model*.php paths)."""

import functools
import json

from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.accounts.models import ApiKey
from apps.catalog import schema_form, snippets
from apps.catalog.models import AIModel
from apps.generations.models import Job
from apps.generations.providers import models_servable
from apps.showroom.services import UNPUBLISHABLE_CATEGORIES
from kiwiwhale.lib.urls import instance_base_url

MODEL_TABS = [
    ("model", "Overview", "model_detail"),
    ("playground", "Playground", "model_playground"),
    ("api", "API", "model_api"),
    ("docs", "Docs", "model_docs"),
    ("code", "Code", "model_code"),
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
    servable = models_servable().filter(pk=model.pk).exists()
    return {
        "model": model,
        "servable": servable,
        "icon": schema_form.CATEGORY_ICONS.get(model.category, "tool"),
        "price_text": schema_form.price_label(model),
        "tab": tab,
        "tabs": [(key, label, f"{reverse(url)}?model={model.public_model}") for key, label, url in MODEL_TABS],
        "base_url": instance_base_url(request),
        "example_json": json.dumps({"model": model.public_model, "input": schema_form.example_input(model)}, indent=2),
    }


@_needs_model
def model_detail(request):
    context = _model_context(request, "model")
    context["fields"] = schema_form.form_fields(context["model"])
    return render(request, "catalog/model_detail.html", context)


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
    upload_available = models_servable().filter(public_model=schema_form.UPLOAD_MODEL).exists()
    context.update(
        fields=schema_form.form_fields(model, initial=initial, upload_available=upload_available),
        price=schema_form.price_descriptor(model),
        upload_model=schema_form.UPLOAD_MODEL,
        upload_max_bytes=_upload_max_bytes(),
        remix_id=request.GET.get("remix", "")[:64],
    )
    return render(request, "catalog/model_playground.html", context)


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
    return render(request, "catalog/model_api.html", context)


@_needs_model
def model_docs(request):
    context = _model_context(request, "docs")
    context["fields"] = schema_form.form_fields(context["model"])
    return render(request, "catalog/model_docs.html", context)


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
    return render(request, "catalog/model_code.html", context)
