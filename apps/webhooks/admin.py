from django.contrib import admin, messages

from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSecret
from apps.webhooks.services import webhook_redeliver


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    fields = ["number", "started_at", "duration_ms", "status_code", "error", "response_excerpt"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "job", "event", "status", "attempts", "last_status_code", "next_attempt_at"]
    list_filter = ["status", "event"]
    search_fields = ["id", "job__id", "user__username", "user__email", "url"]
    list_select_related = ["user", "job"]
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Redeliver: send the event again (same webhook-id), with a fresh round of retries")
    def redeliver(self, request, queryset):
        for delivery in queryset:
            done = webhook_redeliver(delivery=delivery)
            level = messages.SUCCESS if done else messages.WARNING
            note = "sent again" if done else "still pending: its tries are under way"
            self.message_user(request, f"{delivery.pk}: {note}.", level)


@admin.register(WebhookSecret)
class WebhookSecretAdmin(admin.ModelAdmin):
    """Shows who has a secret and when it changed, never the secret itself."""

    list_display = ["user", "created_at", "rotated_at"]
    search_fields = ["user__username", "user__email"]
    fields = ["user", "created_at", "rotated_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False
