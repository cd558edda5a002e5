from django.contrib import admin, messages
from django.utils import timezone

from apps.contact.models import ContactMessage
from apps.contact.services import contact_message_email


@admin.register(ContactMessage)
class ContactMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "email", "name", "subject", "user", "emailed_at", "handled_at"]
    list_filter = [("handled_at", admin.EmptyFieldListFilter), ("emailed_at", admin.EmptyFieldListFilter)]
    search_fields = ["email", "name", "subject", "message"]
    list_select_related = ["user"]
    readonly_fields = ["name", "email", "subject", "message", "user", "ip_address", "created_at", "emailed_at"]
    fields = [*readonly_fields, "handled_at"]
    actions = ["mark_handled", "email_again"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Mark as handled")
    def mark_handled(self, request, queryset):
        done = queryset.filter(handled_at__isnull=True).update(handled_at=timezone.now())
        self.message_user(request, f"Marked {done} message(s) handled.", messages.SUCCESS)

    @admin.action(description="Email to the admins again")
    def email_again(self, request, queryset):
        sent = sum(contact_message_email(contact=contact) for contact in queryset.select_related("user"))
        self.message_user(request, f"Emailed {sent} of {len(queryset)} message(s).", messages.SUCCESS)
