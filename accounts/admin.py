from django.contrib import admin

from accounts.models import Account, AuditRecord, Membership


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "email", "active", "active_since"]
    list_filter = ["kind", "active"]
    search_fields = ["name", "email", "company"]
    inlines = [MembershipInline]


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    list_display = ["created", "actor", "action", "target_repr", "detail"]
    list_filter = ["action", "target_type"]
    search_fields = ["target_repr", "detail"]
    readonly_fields = [f.name for f in AuditRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
