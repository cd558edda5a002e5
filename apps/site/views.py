"""The site's own pages: the catalog home, the docs, discovery (llms.txt, agent.json) and the error pages.

The other pages live with the app that owns them; kiwiwhale/legacy_urls.py maps each published path to its view.
"""

from django.http import Http404, HttpResponse, HttpResponseServerError, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.templatetags.static import static

from apps.catalog import schema_form
from apps.catalog.models import AIModel, Category
from apps.generations.providers import models_servable
from apps.site import discovery, docs
from kiwiwhale.lib.urls import instance_base_url

# --- Catalog -----------------------------------------------------------------------------------------------


def _search_text(model: AIModel) -> str:
    return f"{model.public_model} {model.label} {model.category} {model.description}".lower()


def home(request):
    models = list(models_servable())  # one query, whatever the size of the catalog
    for model in models:
        model.icon = schema_form.CATEGORY_ICONS.get(model.category, "tool")
        model.price_text = schema_form.price_label(model)
    present = {model.category for model in models}
    icons = schema_form.CATEGORY_ICONS
    categories = [(value, label, icons[value]) for value, label in Category.choices if value in present]
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


# --- Docs and discovery ------------------------------------------------------------------------------------


def docs_index(request):
    return redirect("docs", slug=docs.PUBLISHED[0])


def favicon(request):
    return redirect(static("icons/favicon.svg"), permanent=True)


def docs_page(request, slug: str):
    if slug not in docs.PAGES:
        raise Http404("No such page.")
    page = docs.doc_render(slug, base_url=instance_base_url(request))
    if not page.exists and slug not in docs.PUBLISHED:
        raise Http404("No such page.")
    return render(request, "site/docs_page.html", {"page": page, "menu": docs.doc_menu()})


def llms_txt(request):
    text = discovery.llms_txt(base_url=instance_base_url(request), models=models_servable())
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    return response


def agent_json(request):
    body = discovery.agent_descriptor(base_url=instance_base_url(request), model_count=models_servable().count())
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
