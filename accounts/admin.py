from django.contrib import admin
from django.template.defaultfilters import truncatechars

from accounts.models import Account, ApiToken, AuditRecord, Membership, Origin
from accounts.services import api_token_revoke


def origin_text(origin: str, actor) -> str:
    """ "Customer (alice)", "Staff (ops-admin)", "System: reconcile": who set a job or a change going."""
    label = Origin(origin).label if origin in Origin.values else origin
    return f"{label} ({actor.get_username()})" if actor is not None else label


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

    def get_search_results(self, request, queryset, search_term):
        queryset, duplicates = super().get_search_results(request, queryset, search_term)
        if request.path.endswith("/autocomplete/") and request.GET.get("model_name") == "instance":
            # Choosing who a new instance is for (the spin-up form): an inactive account cannot own one.
            queryset = queryset.filter(active=True)
        return queryset, duplicates


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
    list_display = ["created", "who", "action", "target_repr", "short_detail"]
    list_filter = ["origin", "action", "target_type"]
    search_fields = ["target_repr", "target_id", "detail", "actor__username"]
    list_select_related = ["actor"]
    readonly_fields = [f.name for f in AuditRecord._meta.fields]

    @admin.display(description="Who", ordering="origin")
    def who(self, obj: AuditRecord) -> str:
        return origin_text(obj.origin, obj.actor)

    @admin.display(description="Detail")
    def short_detail(self, obj: AuditRecord) -> str:
        return truncatechars(obj.detail, 90)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Issued by `manage.py create_api_token` (the secret is shown once); revoked here."""

    list_display = ["id", "label", "user", "scopes", "created", "expiry", "last_used"]
    search_fields = ["label", "user__username"]
    readonly_fields = ["user", "label", "scopes", "created", "expiry", "last_used"]
    exclude = ["token_hash"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        api_token_revoke(token=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for token in queryset:
            api_token_revoke(token=token, actor=request.user)
