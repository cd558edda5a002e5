from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from apps.blog.markdown import markdown_to_html
from apps.blog.models import Post


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "is_draft", "published_at", "live", "author", "updated_at"]
    list_filter = ["is_draft"]
    search_fields = ["title", "slug", "summary", "body"]
    prepopulated_fields = {"slug": ["title"]}
    date_hierarchy = "published_at"
    readonly_fields = ["created_at", "updated_at", "preview"]
    fields = ["title", "slug", "summary", "body", "is_draft", "published_at", "author", "preview", "created_at"]
    actions = ["publish_now", "make_draft"]

    @admin.display(boolean=True, description="Live")
    def live(self, obj):
        return obj.is_live

    @admin.display(description="Preview (as visitors will see it, after sanitising)")
    def preview(self, obj):
        if not obj.pk:
            return "Save to see a preview."
        return format_html('<div style="max-width:720px">{}</div>', markdown_to_html(obj.body))

    def save_model(self, request, obj, form, change):
        if obj.author_id is None:
            obj.author = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Publish now")
    def publish_now(self, request, queryset):
        queryset.filter(published_at__isnull=True).update(published_at=timezone.now())
        queryset.update(is_draft=False, updated_at=timezone.now())

    @admin.action(description="Back to draft")
    def make_draft(self, request, queryset):
        queryset.update(is_draft=True, updated_at=timezone.now())
