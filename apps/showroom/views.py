from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.catalog.models import Category
from apps.generations.models import Job
from apps.showroom import services
from apps.showroom.forms import PublishForm, ReportForm
from apps.showroom.models import Publication
from kiwiwhale.lib.keyset import InvalidCursor
from kiwiwhale.lib.ratelimit import client_ip, rate_limit_hit


def showroom(request):
    """/showroom.php: the gallery, or one publication with ?id=."""
    if "id" in request.GET:
        return publication_detail(request, request.GET["id"])
    return publication_list(request)


def publication_list(request):
    category = request.GET.get("category", "")
    category = category if category in Category.values else ""
    public_model = request.GET.get("model", "").strip()[:120]
    mine = request.GET.get("mine") == "1" and request.user.is_authenticated
    filters = {"viewer": request.user, "category": category, "public_model": public_model, "mine": mine}
    try:
        page = services.publications_gallery(**filters, cursor=request.GET.get("cursor", ""))
    except InvalidCursor:
        page = services.publications_gallery(**filters)
    query = {key: value for key, value in (("category", category), ("model", public_model)) if value}
    if mine:
        query["mine"] = "1"
    return render(
        request,
        "showroom/gallery.html",
        {
            "page": page,
            "filters": services.gallery_filters(),
            "category": category,
            "public_model": public_model,
            "mine": mine,
            "query": query,
        },
    )


def publication_detail(request, publication_id):
    try:
        publication = services.publication_get(viewer=request.user, publication_id=publication_id)
    except services.PublicationNotFound:
        raise Http404("No such publication.") from None
    is_owner = request.user.is_authenticated and publication.owner_id == request.user.pk
    liked = bool(services.liked_ids(user=request.user, publications=[publication]))
    prompt = publication.job.input.get("prompt") if publication.show_prompt else None
    return render(
        request,
        "showroom/detail.html",
        {
            "publication": publication,
            "outputs": publication.job.outputs.all(),
            "is_owner": is_owner,
            "liked": liked,
            "prompt": prompt if isinstance(prompt, str) else None,
            "input_shown": services.publication_remix_input(publication),
            "edit_form": PublishForm(
                initial={
                    "job_id": publication.job_id,
                    "title": publication.title,
                    "show_prompt": publication.show_prompt,
                }
            )
            if is_owner
            else None,
        },
    )


@require_POST
def publication_publish(request):
    """The playground's and generations page's "Publish to showroom" form."""
    if not request.user.is_authenticated:
        return redirect_to_login(_back(request, default="/showroom.php"))
    form = PublishForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Could not publish: " + "; ".join(e for errors in form.errors.values() for e in errors))
        return redirect(_back(request, default="/generations.php"))
    job = (
        Job.objects.for_user(request.user)
        .visible()
        .select_related("model")
        .filter(pk=form.cleaned_data["job_id"])
        .first()
    )
    if job is None:
        raise Http404("No such generation on this account.")
    try:
        publication = services.publication_publish(
            job=job, title=form.cleaned_data["title"], show_prompt=form.cleaned_data["show_prompt"]
        )
    except services.NotPublishable as exc:
        messages.error(request, str(exc))
        return redirect(_back(request, default="/generations.php"))
    if publication.is_hidden:
        messages.warning(request, "Saved. A moderator has hidden this publication, so only you can see it.")
    else:
        messages.success(request, "Published to the showroom.")
    return redirect(publication.get_absolute_url())


@require_POST
def publication_unpublish(request, pk: int):
    if not request.user.is_authenticated:
        return redirect_to_login(f"/showroom.php?id={pk}")
    publication = Publication.objects.owned_by(request.user).filter(pk=pk).first()
    if publication is None:
        raise Http404("No such publication of yours.")
    services.publication_unpublish(publication=publication)
    messages.success(request, "Taken out of the showroom. Only you can see it now; publish it again at any time.")
    return redirect(publication.get_absolute_url())


@require_POST
def publication_like(request, pk: int):
    """Sets the like to the posted state (liked=1 or 0); answers JSON to a fetch() asking for it."""
    if not request.user.is_authenticated:
        return redirect_to_login(f"/showroom.php?id={pk}")
    publication = _visible_or_404(request, pk)
    liked = request.POST.get("liked", "1") == "1"
    like_count = services.publication_like(user=request.user, publication=publication, liked=liked)
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"success": True, "liked": liked, "like_count": like_count})
    return redirect(_back(request, default=publication.get_absolute_url()))


def publication_report(request, pk: int):
    """Anyone may report a publication they can see; each account or address only so often."""
    publication = _visible_or_404(request, pk)
    form = ReportForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        ident = f"user:{request.user.pk}" if request.user.is_authenticated else f"ip:{client_ip(request)}"
        wait = rate_limit_hit("showroom-report", ident, rate=settings.RATE_SHOWROOM_REPORT)
        if wait:
            form.add_error(None, f"You have sent many reports recently; please try again in {wait // 60 + 1} min.")
            status = 429
        else:
            services.publication_report(
                publication=publication,
                reason=form.cleaned_data["reason"],
                details=form.cleaned_data["details"],
                reporter=request.user,
                ip=client_ip(request),
            )
            messages.success(request, "Thank you. A moderator will look at it.")
            return redirect(publication.get_absolute_url())
    elif request.method == "POST":
        status = 400
    return render(request, "showroom/report.html", {"publication": publication, "form": form}, status=status)


def _visible_or_404(request, pk) -> Publication:
    try:
        return services.publication_get(viewer=request.user, publication_id=pk)
    except services.PublicationNotFound:
        raise Http404("No such publication.") from None


def _back(request, *, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default
