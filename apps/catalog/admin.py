from django.contrib import admin

from apps.billing import money
from apps.catalog.models import AIModel, ModelRoute


class ModelRouteInline(admin.TabularInline):
    model = ModelRoute
    extra = 0
    fields = ["priority", "provider", "upstream_model", "params", "enabled"]


@admin.register(AIModel)
class AIModelAdmin(admin.ModelAdmin):
    list_display = ["public_model", "label", "category", "cost", "enabled", "sort_order"]
    list_filter = ["category", "enabled"]
    search_fields = ["public_model", "label", "product_id"]
    list_editable = ["enabled", "sort_order"]
    inlines = [ModelRouteInline]

    @admin.display(description="Cost (credits)")
    def cost(self, obj):
        return money.format_credits(obj.base_cost_micro)
