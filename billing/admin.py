"""Billing in the admin: everything read-only. Invoices change only through billing.services (the
`bill` command and the schedule), so no form here can edit an amount or a finalized invoice."""

from django.contrib import admin

from billing.models import Invoice, InvoiceItem, Promotion, UsageSegment


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class InvoiceItemInline(admin.TabularInline):
    model = InvoiceItem
    extra = 0
    can_delete = False
    fields = [
        "label",
        "period",
        "from_at",
        "to_at",
        "quantity",
        "unit_price",
        "list_amount",
        "credit",
        "waived_reason",
        "amount",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "period", "status", "subtotal", "tax", "total", "finalized_at"]
    list_filter = ["status", "period", "account__kind"]
    search_fields = ["account__name"]
    list_select_related = ["account"]
    date_hierarchy = "date"
    inlines = [InvoiceItemInline]


@admin.register(InvoiceItem)
class InvoiceItemAdmin(ReadOnlyAdmin):
    list_display = ["invoice", "label", "period", "quantity", "unit_price", "list_amount", "credit", "amount"]
    list_filter = ["period", "type"]
    search_fields = ["label", "invoice__account__name"]
    list_select_related = ["invoice__account"]
    raw_id_fields = ["invoice", "segment", "promotion"]


@admin.register(UsageSegment)
class UsageSegmentAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "instance",
        "account",
        "instance_type",
        "price_hourly",
        "price_monthly",
        "started_at",
        "ended_at",
    ]
    list_filter = ["instance_type"]
    search_fields = ["instance__label", "account__name"]
    list_select_related = ["instance", "account", "instance_type"]
    raw_id_fields = ["instance", "account", "previous", "job"]


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    list_display = ["account", "summary", "credit", "used", "starts_at", "expires_at"]
    list_filter = ["kind"]
    search_fields = ["account__name"]
    list_select_related = ["account"]
