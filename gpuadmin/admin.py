from django.contrib import admin
from django.db.models import Count, Q
from django.template.loader import render_to_string
from waffle.admin import FlagAdmin as WaffleFlagAdmin

from accounts.models import Account
from accounts.services import account_limits_set
from billing.admin import AccountAdmin as BillingAccountAdmin
from gpuadmin.display import minute
from gpuadmin.models import Flag
from gpuadmin.selectors import account_overview
from gpuadmin.spin_up import can_spin_up

admin.site.site_header = "gpuadmin"
admin.site.site_title = "gpuadmin"
admin.site.index_title = "GPU fleet administration"


@admin.register(Flag)
class FlagAdmin(WaffleFlagAdmin):
    filter_horizontal = ["groups", "accounts"]
    raw_id_fields = ["users"]
    # Who is in, at a glance (waffle's percent, languages and rollout columns are unused here).
    list_display = [
        "name",
        "note",
        "everyone",
        "employee_accounts",
        "superusers",
        "staff",
        "authenticated",
        "modified_at",
    ]

    @admin.display(description="Modified (UTC)", ordering="modified")
    def modified_at(self, obj: Flag) -> str:
        return minute(obj.modified)


# The account page composes what the other apps know about an account: accounts' fields and members,
# billing's balances, trial and invoices (billing.admin), and here what it holds and may buy. Importing
# billing.admin above registered billing's page; this one extends it and takes its place.
admin.site.unregister(Account)


@admin.register(Account)
class AccountAdmin(BillingAccountAdmin):
    change_form_template = "admin/accounts/account/change_form.html"
    list_display = ["name", "kind", "email", "active", "live_instances", "gpus_held", "active_since"]
    readonly_fields = ["active_since", "overview"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "email", "company", "active", "active_since"]}),
        ("What it holds and may buy", {"fields": ["overview"]}),
        ("Limits", {"fields": ["gpu_limit", "instance_limit"]}),
    ]
    LIMIT_FIELDS = ("gpu_limit", "instance_limit")

    def get_queryset(self, request):
        live = Q(instances__deleted_at__isnull=True)
        held = Q(
            instances__allocations__released_at__isnull=True,
            instances__allocations__gpus__released_at__isnull=True,
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                live_count=Count("instances", filter=live, distinct=True),
                gpus_count=Count("instances__allocations__gpus", filter=held, distinct=True),
            )
        )

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        return fieldsets if obj is not None else fieldsets[:1]

    @admin.display(description="Live instances", ordering="live_count")
    def live_instances(self, obj: Account) -> int:
        return obj.live_count

    @admin.display(description="GPUs held", ordering="gpus_count")
    def gpus_held(self, obj: Account) -> int:
        return obj.gpus_count

    @admin.display(description="Overview")
    def overview(self, obj: Account) -> str:
        if obj.pk is None:
            return "-"
        return render_to_string(
            "admin/accounts/account/overview.html", {"overview": account_overview(account=obj)}
        )

    def save_model(self, request, obj, form, change):
        # The limits change through their service (locked, audited); the other fields as the admin does.
        if not change or not set(self.LIMIT_FIELDS) & set(form.changed_data):
            return super().save_model(request, obj, form, change)
        wanted = {name: getattr(obj, name) for name in self.LIMIT_FIELDS}
        for name in self.LIMIT_FIELDS:
            setattr(obj, name, form.initial.get(name))
        super().save_model(request, obj, form, change)
        account_limits_set(account=obj, actor=request.user, **wanted)
        return None

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"can_spin_up": can_spin_up(request.user), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra)
