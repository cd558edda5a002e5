from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.html import format_html

from apps.showroom.models import Like, Publication, Report
from apps.showroom.services import publication_moderate, report_resolve


class ReportInline(admin.TabularInline):
    model = Report
    extra = 0
    fields = ["created_at", "reason", "details", "reporter", "reporter_ip", "resolved_at", "resolved_by"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class OpenReportsFilter(admin.SimpleListFilter):
    title = "reports"
    parameter_name = "reports"

    def lookups(self, request, model_admin):
        return [("open", "With open reports")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(reports__resolved_at__isnull=True).distinct()
        return queryset


@admin.register(Publication)
class PublicationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "title",
        "owner",
        "model",
        "is_published",
        "is_hidden",
        "is_featured",
        "like_count",
        "open_reports",
        "published_at",
    ]
    list_display_links = ["id", "title"]
    list_filter = [OpenReportsFilter, "is_hidden", "is_featured", "is_published", "category"]
    search_fields = ["id", "title", "owner__username", "owner__email", "job__id", "model__public_model"]
    list_select_related = ["owner", "model"]
    readonly_fields = [
        "job",
        "cover",
        "owner",
        "model",
        "category",
        "title",
        "show_prompt",
        "is_published",
        "like_count",
        "created_at",
        "published_at",
        "preview",
        "page",
    ]
    fields = ["page", "preview", *readonly_fields[:-2], "is_hidden", "is_featured", "moderation_note"]
    inlines = [ReportInline]
    actions = ["hide", "unhide", "feature", "unfeature"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(open_report_count=Count("reports", filter=Q(reports__resolved_at__isnull=True)))
        )

    def has_add_permission(self, request):
        return False  # owners publish; moderators hide or feature

    @admin.display(description="Open reports", ordering="open_report_count")
    def open_reports(self, obj):
        return obj.open_report_count

    @admin.display(description="Cover")
    def preview(self, obj):
        cover = obj.cover
        if cover is None:
            return "—"
        if cover.type == "image" and cover.file:
            return format_html('<img src="{}" alt="" style="max-width:320px;max-height:320px">', cover.file.url)
        if cover.file:
            return format_html('<a href="{}" rel="noopener" target="_blank">{}</a>', cover.file.url, cover.file_name)
        return cover.text[:500]

    @admin.display(description="Page")
    def page(self, obj):
        return format_html('<a href="{}" target="_blank">{}</a>', obj.get_absolute_url(), obj.get_absolute_url())

    def save_model(self, request, obj, form, change):
        changed = set(form.changed_data)
        publication_moderate(
            publication=obj,
            hidden=obj.is_hidden if "is_hidden" in changed else None,
            featured=obj.is_featured if "is_featured" in changed else None,
            resolved_by=request.user,
        )
        if "moderation_note" in changed:
            Publication.objects.filter(pk=obj.pk).update(moderation_note=obj.moderation_note)

    def _moderate(self, request, queryset, verb: str, **changes):
        for publication in queryset:
            publication_moderate(publication=publication, resolved_by=request.user, **changes)
        self.message_user(request, f"{verb} {len(queryset)} publication(s).", messages.SUCCESS)

    @admin.action(description="Hide from the showroom (and resolve their reports)")
    def hide(self, request, queryset):
        self._moderate(request, queryset, "Hid", hidden=True)

    @admin.action(description="Show again in the showroom")
    def unhide(self, request, queryset):
        self._moderate(request, queryset, "Showed", hidden=False)

    @admin.action(description="Feature (shown first)")
    def feature(self, request, queryset):
        self._moderate(request, queryset, "Featured", featured=True)

    @admin.action(description="Stop featuring")
    def unfeature(self, request, queryset):
        self._moderate(request, queryset, "Unfeatured", featured=False)


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ["id", "publication_link", "reason", "reporter", "reporter_ip", "created_at", "resolved_at"]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter), "reason"]
    search_fields = ["publication__title", "publication__id", "reporter__email", "details"]
    list_select_related = ["publication", "reporter"]
    readonly_fields = [
        "publication",
        "reporter",
        "reporter_ip",
        "reason",
        "details",
        "created_at",
        "resolved_at",
        "resolved_by",
    ]
    actions = ["resolve", "resolve_and_hide"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Publication")
    def publication_link(self, obj):
        return format_html('<a href="{}">{}</a>', obj.publication.get_absolute_url(), obj.publication)

    @admin.action(description="Resolve: nothing to do")
    def resolve(self, request, queryset):
        done = sum(report_resolve(report=report, resolved_by=request.user) for report in queryset)
        self.message_user(request, f"Resolved {done} report(s).", messages.SUCCESS)

    @admin.action(description="Hide the reported publications and resolve their reports")
    def resolve_and_hide(self, request, queryset):
        publications = {report.publication for report in queryset.select_related("publication")}
        for publication in publications:
            publication_moderate(publication=publication, hidden=True, resolved_by=request.user)
        self.message_user(request, f"Hid {len(publications)} publication(s).", messages.SUCCESS)


@admin.register(Like)
class LikeAdmin(admin.ModelAdmin):
    list_display = ["publication", "user", "created_at"]
    list_select_related = ["publication", "user"]
    search_fields = ["user__email", "publication__title"]
    readonly_fields = ["publication", "user", "created_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the like count follows the likes; people unlike from the page
