"""The showroom: publishing generations, the gallery, likes, reports and moderation."""

import copy
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.catalog.models import AIModel, Category
from apps.generations.models import Job
from apps.showroom.models import GALLERY_ORDERING, Like, Publication, Report
from kiwiwhale.lib.keyset import keyset_page

TITLE_MAX = 120
# Tools (uploads, ffmpeg) run on the user's own files; they are not generations and the showroom is not a file host.
UNPUBLISHABLE_CATEGORIES = {Category.TOOLS}
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class NotPublishable(Exception):
    """The job cannot be published (yet): the message says why."""


class PublicationNotFound(Exception):
    pass


def publication_publish(*, job: Job, title: str = "", show_prompt: bool = False) -> Publication:
    """Publishes a completed job of its owner (the caller has checked that `job` is theirs), or updates and
    republishes its publication. A publication hidden by a moderator stays hidden. Safe to call twice.

    The outputs are shown from where they already are: output URLs are public and unguessable, nothing is copied.
    """
    refusal = job_publish_refusal(job)
    if refusal:
        raise NotPublishable(refusal)
    cover = next(output for output in job.outputs.all() if output.file or output.text)
    title = title_clean(title) or job.model.label[:TITLE_MAX]
    with transaction.atomic():
        publication = Publication.objects.select_for_update().filter(job=job).first()
        if publication is None:
            try:
                with transaction.atomic():
                    transaction.on_commit(gallery_filters_forget)
                    return Publication.objects.create(
                        job=job,
                        cover=cover,
                        owner_id=job.user_id,
                        model=job.model,
                        category=job.model.category,
                        title=title,
                        show_prompt=show_prompt,
                    )
            except IntegrityError:  # a simultaneous first publish won; update that one
                publication = Publication.objects.select_for_update().get(job=job)
        publication.title = title
        publication.show_prompt = show_prompt
        publication.cover = cover
        if not publication.is_published:
            publication.is_published = True
            publication.published_at = timezone.now()
        publication.save(update_fields=["title", "show_prompt", "cover", "is_published", "published_at"])
        transaction.on_commit(gallery_filters_forget)
    return publication


def job_publish_refusal(job: Job) -> str:
    """Why `job` cannot be published, or "" when it can (pages offer Publish only then)."""
    if job.deleted_at is not None:
        return "This generation was deleted."
    if job.model.category in UNPUBLISHABLE_CATEGORIES:
        return "Tool runs (uploads, conversions) are not generations and cannot be published."
    if job.status != Job.Status.COMPLETED:
        return f"Only completed generations can be published; this one is {job.status}."
    if not any(output.file or output.text for output in job.outputs.all()):
        return "This generation has no output to show."
    return ""


def publication_unpublish(*, publication: Publication) -> Publication:
    """Takes a publication out of the showroom; its likes, reports and moderation state are kept."""
    Publication.objects.filter(pk=publication.pk).update(is_published=False)
    gallery_filters_forget()
    publication.is_published = False
    return publication


def title_clean(title: str) -> str:
    """One line of at most TITLE_MAX characters. HTML is kept as text: templates escape it."""
    return " ".join(_CONTROL_CHARS.sub(" ", title or "").split())[:TITLE_MAX]


@dataclass
class GalleryPage:
    publications: list[Publication]
    next_cursor: str
    liked_ids: set[int]


def publications_gallery(
    *, viewer, category: str = "", public_model: str = "", mine: bool = False, cursor: str = "", limit: int = 0
) -> GalleryPage:
    """One page of the gallery, featured first then newest, in a constant number of queries.

    `mine` lists the viewer's own publications in every state instead. Raises InvalidCursor for a bad cursor.
    """
    limit = limit or settings.SHOWROOM_PAGE_SIZE
    if mine and viewer.is_authenticated:
        publications = Publication.objects.owned_by(viewer)
    else:
        publications = Publication.objects.public()
    if category:
        publications = publications.filter(category=category)
    if public_model:
        publications = publications.filter(model__public_model=public_model)
    rows, next_cursor = keyset_page(publications.with_cards(), ordering=GALLERY_ORDERING, cursor=cursor, limit=limit)
    return GalleryPage(publications=rows, next_cursor=next_cursor, liked_ids=liked_ids(user=viewer, publications=rows))


def liked_ids(*, user, publications) -> set[int]:
    if not user.is_authenticated or not publications:
        return set()
    ids = [publication.pk for publication in publications]
    return set(Like.objects.filter(user=user, publication_id__in=ids).values_list("publication_id", flat=True))


def publication_get(*, viewer, publication_id) -> Publication:
    """The publication with its job and outputs, if `viewer` may see it."""
    try:
        publication_id = int(publication_id)
    except (TypeError, ValueError):
        raise PublicationNotFound(publication_id) from None
    publication = (
        Publication.objects.visible_to(viewer)
        .select_related("job", "model", "owner", "cover")
        .prefetch_related("job__outputs")
        .filter(pk=publication_id)
        .first()
    )
    if publication is None:
        raise PublicationNotFound(publication_id)
    return publication


def publication_like(*, user, publication: Publication, liked: bool) -> int:
    """Sets whether `user` likes the publication (the desired state, so a double click changes nothing) and
    returns the like count. The unique (user, publication) constraint keeps one like per person."""
    with transaction.atomic():
        if liked:
            try:
                with transaction.atomic():
                    Like.objects.create(user=user, publication=publication)
            except IntegrityError:
                pass  # already liked
            else:
                Publication.objects.filter(pk=publication.pk).update(like_count=F("like_count") + 1)
        else:
            removed, _ = Like.objects.filter(user=user, publication=publication).delete()
            if removed:
                Publication.objects.filter(pk=publication.pk, like_count__gt=0).update(like_count=F("like_count") - 1)
        publication.like_count = Publication.objects.values_list("like_count", flat=True).get(pk=publication.pk)
    return publication.like_count


def publication_report(
    *, publication: Publication, reason: str, details: str = "", reporter=None, ip: str | None = None
) -> Report:
    """Records a report for the moderators. A signed-in person's second open report on the same publication
    updates the first instead of adding another."""
    if reason not in Report.Reason.values:
        raise ValueError(f"Unknown reason {reason!r}.")
    details = (details or "").strip()[:2000]
    reporter = reporter if reporter is not None and reporter.is_authenticated else None
    if reporter is not None:
        existing = Report.objects.filter(publication=publication, reporter=reporter, resolved_at__isnull=True).first()
        if existing is not None:
            existing.reason, existing.details = reason, details
            existing.save(update_fields=["reason", "details"])
            return existing
    return Report.objects.create(
        publication=publication, reporter=reporter, reporter_ip=ip or None, reason=reason, details=details
    )


def report_resolve(*, report: Report, resolved_by=None) -> bool:
    """Marks an open report handled. True if this call resolved it."""
    return bool(
        Report.objects.filter(pk=report.pk, resolved_at__isnull=True).update(
            resolved_at=timezone.now(), resolved_by=resolved_by
        )
    )


def publication_moderate(
    *, publication: Publication, hidden: bool | None = None, featured: bool | None = None, resolved_by=None
) -> None:
    """Hides or shows, features or unfeatures a publication. Hiding also resolves its open reports."""
    changes = {}
    if hidden is not None:
        changes["is_hidden"] = hidden
    if featured is not None:
        changes["is_featured"] = featured
    with transaction.atomic():
        if changes:
            Publication.objects.filter(pk=publication.pk).update(**changes)
        if hidden:
            publication.reports.filter(resolved_at__isnull=True).update(
                resolved_at=timezone.now(), resolved_by=resolved_by
            )
        transaction.on_commit(gallery_filters_forget)


def publication_remix_input(publication: Publication) -> dict:
    """The input to prefill the playground with when someone remixes `publication`.

    With show_prompt on: the job's whole input. With it off: only the settings — numbers, switches and choices
    (schema enums). The prompt, any other free text (system prompts, TTS text) and input files or URLs stay private.
    """
    data = copy.deepcopy(publication.job.input or {})
    if publication.show_prompt:
        return data
    properties = (publication.model.input_schema or {}).get("properties") or {}
    return {name: value for name, value in data.items() if _is_setting(properties.get(name), value)}


def _is_setting(schema, value) -> bool:
    if not isinstance(schema, dict):
        return False  # not in the schema: nothing tells us it is harmless
    if isinstance(value, bool | int | float):
        return True
    return isinstance(value, str) and ("enum" in schema or "const" in schema) and value in schema.get("enum", [value])


@dataclass
class Remix:
    publication: Publication
    public_model: str
    input: dict


def publication_remix(*, viewer, publication_id) -> Remix:
    """What the playground needs to remix a publication `viewer` may see: the model's public id and the input."""
    publication = publication_get(viewer=viewer, publication_id=publication_id)
    return Remix(
        publication=publication,
        public_model=publication.model.public_model,
        input=publication_remix_input(publication),
    )


FILTERS_CACHE_KEY = "showroom:filters"


def gallery_filters() -> dict:
    """The categories and models that have public publications, for the gallery's filter menus (cached a minute,
    and forgotten whenever a publication changes, so a new one is in the menus at once)."""
    return cache.get_or_set(FILTERS_CACHE_KEY, _gallery_filters, timeout=60)


def gallery_filters_forget() -> None:
    cache.delete(FILTERS_CACHE_KEY)


def _gallery_filters() -> dict:
    models = (
        AIModel.objects.filter(publications__in=Publication.objects.public())
        .distinct()
        .order_by("sort_order", "public_model")
    )
    models = list(models.values("public_model", "label", "category"))
    labels = dict(Category.choices)
    categories = sorted({model["category"] for model in models})
    return {"categories": [(value, labels.get(value, value)) for value in categories], "models": models}
