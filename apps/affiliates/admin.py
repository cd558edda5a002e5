from django.contrib import admin, messages

from apps.affiliates.models import AffiliateAccount, Attribution, Commission, CommissionEntry, Payout, PayoutEvent
from apps.affiliates.services import payout_approve, payout_mark_paid, payout_reject
from apps.billing import money


class ReadOnly(admin.ModelAdmin):
    """Commission moves only through the services; these screens are for reading."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Attribution)
class AttributionAdmin(ReadOnly):
    list_display = ["referred", "referrer", "code", "source", "created_at"]
    list_filter = ["source"]
    search_fields = ["referred__email", "referrer__email", "code"]


@admin.register(AffiliateAccount)
class AffiliateAccountAdmin(ReadOnly):
    list_display = ["user", "pending", "available", "requested", "paid", "converted"]
    search_fields = ["user__email", "user__username"]

    def pending(self, obj):
        return money.format_credits(obj.pending_micro)

    def available(self, obj):
        return money.format_credits(obj.available_micro)

    def requested(self, obj):
        return money.format_credits(obj.requested_micro)

    def paid(self, obj):
        return money.format_credits(obj.paid_micro)

    def converted(self, obj):
        return money.format_credits(obj.converted_micro)


@admin.register(Commission)
class CommissionAdmin(ReadOnly):
    list_display = ["payment_reference", "affiliate", "referred", "amount_micro", "status", "available_at"]
    list_filter = ["status"]
    search_fields = ["payment_reference", "affiliate__user__email", "referred__email"]


@admin.register(CommissionEntry)
class CommissionEntryAdmin(ReadOnly):
    list_display = ["created_at", "account", "kind", "bucket", "amount_micro", "reference", "created_by"]
    list_filter = ["kind", "bucket"]
    search_fields = ["idempotency_key", "reference"]


class PayoutEventInline(admin.TabularInline):
    model = PayoutEvent
    extra = 0
    readonly_fields = ["action", "actor", "note", "created_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    list_display = ["pk", "affiliate", "amount", "method", "status", "created_at", "decided_by", "decided_at"]
    list_filter = ["status"]
    readonly_fields = [
        "affiliate",
        "amount_micro",
        "method",
        "status",
        "created_at",
        "decided_at",
        "decided_by",
        "note",
    ]
    inlines = [PayoutEventInline]
    actions = ["approve", "reject", "mark_paid"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Credits")
    def amount(self, obj):
        return money.format_credits(obj.amount_micro)

    def _apply(self, request, queryset, action, label):
        done = sum(action(payout=payout, by=request.user) for payout in queryset)
        skipped = queryset.count() - done
        self.message_user(
            request,
            f"{done} payout(s) {label}; {skipped} not in a state that allows it.",
            messages.SUCCESS if not skipped else messages.WARNING,
        )

    @admin.action(description="Approve selected payouts")
    def approve(self, request, queryset):
        self._apply(request, queryset, payout_approve, "approved")

    @admin.action(description="Reject selected payouts (amount returns to available)")
    def reject(self, request, queryset):
        self._apply(request, queryset, payout_reject, "rejected")

    @admin.action(description="Mark selected payouts paid")
    def mark_paid(self, request, queryset):
        self._apply(request, queryset, payout_mark_paid, "marked paid")
