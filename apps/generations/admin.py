from django.contrib import admin, messages

from apps.billing import money
from apps.generations.models import Job, Output
from apps.generations.services import job_refund, job_retry


class OutputInline(admin.TabularInline):
    model = Output
    extra = 0
    fields = ["position", "type", "file", "content_type", "file_size", "width", "height", "duration_seconds"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "model", "status", "cost", "provider", "attempts", "created_at", "completed_at"]
    list_filter = ["status", "model__category", "provider"]
    search_fields = ["id", "user__username", "user__email", "model__public_model"]
    list_select_related = ["user", "model"]
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [OutputInline]
    actions = ["retry", "refund"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a job is a record of money held and charged

    @admin.display(description="Cost (credits)")
    def cost(self, obj):
        return money.format_credits(obj.cost_micro)

    @admin.action(description="Retry: submit the same input again as a new job (charged anew)")
    def retry(self, request, queryset):
        for job in queryset.select_related("user", "model"):
            try:
                new_job = job_retry(job=job)
            except Exception as exc:  # insufficient credits, model gone: tell the admin, change nothing
                self.message_user(request, f"{job.pk}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{job.pk} resubmitted as {new_job.pk}.", messages.SUCCESS)

    @admin.action(description="Refund: give back what completed jobs charged")
    def refund(self, request, queryset):
        for job in queryset.select_related("hold"):
            done = job_refund(job=job, reason=f"Refund of {job.pk} by {request.user}", created_by=request.user)
            level = messages.SUCCESS if done else messages.WARNING
            self.message_user(request, f"{job.pk}: {'refunded' if done else 'nothing to refund'}.", level)
