from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from gpuadmin.templatetags.gpuadmin_admin import account_colours, gib
from inventory.counters import active_allocation_exists
from inventory.exceptions import InventoryError
from inventory.models import GpuDevice, GpuModel, Host, HostCpu, Image, InstanceType, NumaNode, Region
from inventory.selectors import (
    CustomerGpuState,
    gpu_customer_state,
    gpu_holder_history,
    gpu_since,
    gpus_with_holders,
    host_topology,
    topology_accounts,
)
from inventory.services import (
    HOST_PLACEMENT_FIELDS,
    gpu_mark_cleaned,
    gpu_mark_faulty,
    gpu_retire,
    gpu_return_to_service,
    host_change,
    host_change_problem,
    host_set_state,
)
from inventory.sync import HostSyncError, host_sync


def action_confirmation(
    modeladmin: admin.ModelAdmin,
    request,
    queryset,
    *,
    action: str,
    title: str,
    question: str,
    button: str,
    ask_reason: bool = False,
) -> TemplateResponse:
    """The page between choosing an action and running it: what it will touch, and a reason if it needs one.

    The page posts the action back with `confirm` set; the action then runs with the reason in POST.
    """
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "button": button,
        "ask_reason": ask_reason,
        "action": action,
        "objects": list(queryset),
        "opts": modeladmin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/gpuadmin/action_confirm.html", context)


def confirmed(request) -> bool:
    return request.POST.get("confirm") == "yes"


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "country", "status"]
    list_filter = ["status", "country"]
    search_fields = ["id", "label"]


@admin.register(GpuModel)
class GpuModelAdmin(admin.ModelAdmin):
    list_display = ["name", "short_name", "pci_id", "vram_mib", "bar_mib"]
    search_fields = ["name", "short_name"]

    @admin.display(description="PCI id")
    def pci_id(self, obj: GpuModel) -> str:
        return f"{obj.vendor_id:04x}:{obj.product_id:04x}"


class NumaNodeInline(admin.TabularInline):
    model = NumaNode
    extra = 0
    fields = [
        "index",
        "memory_mib",
        "reserved_memory_mib",
        "used_memory_mib",
        "hugepages_1g_total",
        "hugepages_1g_used",
    ]
    # Topology comes from discovery and the counters from claims: an edit here would bypass both.
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


class GpuDeviceInline(admin.TabularInline):
    model = GpuDevice
    extra = 0
    fields = ["pci_address", "model", "numa_node", "iommu_group", "state", "state_reason"]
    # State changes go through the GPU actions, which keep the NUMA counters exact and write the audit row.
    readonly_fields = ["pci_address", "model", "numa_node", "iommu_group", "state", "state_reason"]
    # A card that leaves the host is flagged `removed` by a sync; deleting its row would skip the counters.
    can_delete = False
    show_change_link = True


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = [
        "hostname",
        "region",
        "kind",
        "state",
        "state_reason",
        "simulated",
        "generation",
        "last_synced_at",
    ]
    list_filter = ["region", "kind", "state", "simulated"]
    search_fields = ["hostname"]
    # `simulated` follows the URI at enrollment: a switch here could put unreset cards back on sale.
    readonly_fields = [
        "generation",
        "last_synced_at",
        "created",
        "state",
        "state_reason",
        "simulated",
        "topology",
    ]
    inlines = [NumaNodeInline, GpuDeviceInline]
    actions = ["sync_from_libvirt", "enable_hosts", "drain_hosts", "maintenance_hosts", "disable_hosts"]

    def get_readonly_fields(self, request, obj=None):
        # A host's name is its identity in discovery, the logs and the metrics: set once, at enrollment.
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "hostname"] if obj is not None else fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None:
            return form

        class HostChangeForm(form):
            """Region, kind, URI, profile and pool change through host_change: refused while the host
            holds allocations, said on the form before anything is saved."""

            def clean(self):
                cleaned = super().clean()
                changes = {
                    n: cleaned[n] for n in HOST_PLACEMENT_FIELDS if n in cleaned and n in self.changed_data
                }
                problem = host_change_problem(host=Host.objects.get(pk=self.instance.pk), changes=changes)
                if problem:
                    raise forms.ValidationError(problem)
                return cleaned

        return HostChangeForm

    def save_model(self, request, obj, form, change):
        if not change:
            return super().save_model(request, obj, form, change)
        changes = {n: form.cleaned_data[n] for n in HOST_PLACEMENT_FIELDS if n in form.changed_data}
        try:
            host_change(host=obj, actor=request.user, **changes)
        except InventoryError as exc:  # lost a race with a claim since the form was checked
            self.message_user(request, exc.message, messages.ERROR)
        return None

    @admin.display(description="Topology")
    def topology(self, obj: Host) -> str:
        if obj.pk is None:
            return "-"
        nodes = host_topology(host=obj)
        accounts = topology_accounts(nodes)
        colours = account_colours(accounts)
        legend = [(account_id, name, colours[account_id]) for account_id, name in accounts]
        return render_to_string(
            "admin/inventory/host/topology.html", {"nodes": nodes, "legend": legend, "colours": colours}
        )

    @admin.action(description="Enable selected hosts (new instances may land there)", permissions=["change"])
    def enable_hosts(self, request, queryset):
        return self._set_state(request, queryset, Host.State.ENABLED, "enable_hosts")

    @admin.action(
        description="Drain selected hosts (no new instances; guests keep running)", permissions=["change"]
    )
    def drain_hosts(self, request, queryset):
        return self._set_state(request, queryset, Host.State.DRAINING, "drain_hosts")

    @admin.action(description="Put selected hosts in maintenance", permissions=["change"])
    def maintenance_hosts(self, request, queryset):
        return self._set_state(request, queryset, Host.State.MAINTENANCE, "maintenance_hosts")

    @admin.action(description="Disable selected hosts", permissions=["change"])
    def disable_hosts(self, request, queryset):
        return self._set_state(request, queryset, Host.State.DISABLED, "disable_hosts")

    def _set_state(self, request, queryset, state: str, action: str):
        if state != Host.State.ENABLED and not confirmed(request):
            return action_confirmation(
                self,
                request,
                queryset.order_by("hostname"),
                action=action,
                title=f"Set hosts {state}",
                question=f"Set these hosts {state}? No new instance is placed on them; the instances already "
                "there keep running.",
                button=f"Yes, set them {state}",
                ask_reason=True,
            )
        reason = request.POST.get("reason", "")
        guests = Count("allocations", filter=Q(allocations__released_at__isnull=True))
        for host in queryset.annotate(guests=guests).order_by("hostname"):
            try:
                host_set_state(host=host, state=state, actor=request.user, reason=reason)
            except InventoryError as exc:
                self.message_user(request, f"{host.hostname}: {exc.message}", messages.ERROR)
                continue
            still = (
                f"; {host.guests} instance(s) still on it"
                if host.guests and state != Host.State.ENABLED
                else ""
            )
            self.message_user(request, f"{host.hostname}: {state}{still}.", messages.SUCCESS)
        return None

    @admin.action(description="Sync selected hosts from libvirt")
    def sync_from_libvirt(self, request, queryset):
        # One message per host: a failed host says why and leaves the others synced.
        for host in queryset.order_by("hostname"):
            try:
                report = host_sync(host=host)
            except HostSyncError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            changes = "; ".join(report.changes) if report.changed else "unchanged"
            self.message_user(request, f"{host.hostname}: {changes}", messages.SUCCESS)


@admin.register(NumaNode)
class NumaNodeAdmin(admin.ModelAdmin):
    list_display = ["__str__", "memory_mib", "reserved_memory_mib", "used_memory_mib", "hugepages_1g_total"]
    list_filter = ["host__region"]
    search_fields = ["host__hostname"]
    list_select_related = ["host"]

    # Read-only: memory and huge pages come from discovery (sync_hosts), usage from claims.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(HostCpu)
class HostCpuAdmin(admin.ModelAdmin):
    list_display = ["host", "cpu_id", "numa_node", "core_id", "socket_id", "siblings", "reserved"]
    list_filter = ["reserved", "host__region"]
    search_fields = ["host__hostname"]
    list_select_related = ["host", "numa_node__host"]

    # Read-only: CPUs come from discovery; reservation from the host policy; allocation from claims.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


CUSTOMER_OUT_OF_SALE = [s for s in GpuDevice.State.values if s != GpuDevice.State.AVAILABLE]


class CustomerStateFilter(admin.SimpleListFilter):
    """The state a customer would name: held wins over the row's state (a faulty card a guest holds is
    held)."""

    title = "state"
    parameter_name = "customer_state"

    def lookups(self, request, model_admin):
        return [(s, s) for s in (CustomerGpuState.HELD, CustomerGpuState.FREE, *CUSTOMER_OUT_OF_SALE)]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        held = queryset.alias(held=active_allocation_exists(GpuDevice))
        if value == CustomerGpuState.HELD:
            return held.filter(held=True)
        state = GpuDevice.State.AVAILABLE if value == CustomerGpuState.FREE else value
        return held.filter(held=False, state=state)


class HostStateFilter(admin.SimpleListFilter):
    title = "host state"
    parameter_name = "host_state"

    def lookups(self, request, model_admin):
        return Host.State.choices

    def queryset(self, request, queryset):
        return queryset.filter(host__state=self.value()) if self.value() else queryset


@admin.register(GpuDevice)
class GpuDeviceAdmin(admin.ModelAdmin):
    """Cards as a customer would see them (held, free, cleaning, ...), who holds each and since when."""

    list_display = ["pci_address", "host_link", "node", "model_name", "customer_state", "holder", "since"]
    list_filter = [CustomerStateFilter, "model", "host__region", HostStateFilter]
    search_fields = ["host__hostname", "pci_address"]
    list_select_related = ["host", "model", "numa_node"]
    # Every field is discovery's (a host sync) or the actions' below, which keep the NUMA counters exact,
    # bump the host's generation and write the audit row: the change form only shows them.
    readonly_fields = [
        "host",
        "pci_address",
        "model",
        "numa_node",
        "iommu_group",
        "companion_functions",
        "foreign_functions",
        "missing_since",
        "state",
        "state_reason",
        "holder_now",
        "holder_history",
    ]
    fieldsets = [
        (None, {"fields": ["host", "pci_address", "model", "numa_node", "iommu_group"]}),
        ("State", {"fields": ["state", "state_reason", "missing_since", "holder_now"]}),
        ("Who held it", {"fields": ["holder_history"]}),
        ("Functions", {"classes": ["collapse"], "fields": ["companion_functions", "foreign_functions"]}),
    ]
    actions = ["mark_faulty", "return_to_service", "mark_cleaned", "retire_gpus"]

    def get_queryset(self, request):
        return gpus_with_holders(super().get_queryset(request))

    # Cards come from discovery (a host sync), never from a form.
    def has_add_permission(self, request):
        return False

    # Nor do they leave by a delete, which would skip the counters and lose the holder history: a card
    # that is pulled is retired (the action below) or found missing by a sync.
    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Host", ordering="host__hostname")
    def host_link(self, obj: GpuDevice) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:inventory_host_change", args=[obj.host_id]), obj.host
        )

    @admin.display(description="Node", ordering="numa_node__index")
    def node(self, obj: GpuDevice) -> str:
        return str(obj.numa_node.index) if obj.numa_node_id else "none"

    @admin.display(description="Model", ordering="model__short_name")
    def model_name(self, obj: GpuDevice) -> str:
        return obj.model.short_name

    @admin.display(description="State")
    def customer_state(self, obj: GpuDevice) -> str:
        state = gpu_customer_state(obj)
        return format_html(
            '<span class="gpu-state gpu-state-{}" title="{}">{}</span>', state, obj.state_reason, state
        )

    @admin.display(description="Holder (instance · account)")
    def holder(self, obj: GpuDevice) -> str:
        if obj.holder_instance_id is None:
            return "-"
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">{}</a>',
            reverse("admin:provisioning_instance_change", args=[obj.holder_instance_id]),
            obj.holder_instance_label,
            reverse("admin:accounts_account_change", args=[obj.holder_account_id]),
            obj.holder_account_name,
        )

    @admin.display(description="Since (UTC)")
    def since(self, obj: GpuDevice) -> str:
        moment = gpu_since(obj)
        return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"

    @admin.display(description="Now")
    def holder_now(self, obj: GpuDevice) -> str:
        state = gpu_customer_state(obj)
        since = gpu_since(obj)
        when = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
        if state != CustomerGpuState.HELD:
            return f"{state}{when}"
        return format_html("held by {}{}", self.holder(obj), when)

    @admin.display(description="Holders, newest first")
    def holder_history(self, obj: GpuDevice) -> str:
        if obj.pk is None:
            return "-"
        return render_to_string(
            "admin/inventory/gpudevice/holder_history.html", {"holders": gpu_holder_history(gpu=obj)}
        )

    def _each_gpu(self, request, queryset, change, *, done: str) -> None:
        """Runs one service call per selected card, in host and PCI order, with a message for each:
        the service's refusal, or `done`."""
        for gpu in queryset.select_related("host").order_by("host__hostname", "pci_address"):
            try:
                change(gpu)
            except InventoryError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"{gpu}: {done}", messages.SUCCESS)

    @admin.action(description="Mark selected GPUs faulty (asks for the reason)", permissions=["change"])
    def mark_faulty(self, request, queryset):
        if not confirmed(request):
            return action_confirmation(
                self,
                request,
                queryset.select_related("host").order_by("host__hostname", "pci_address"),
                action="mark_faulty",
                title="Mark GPUs faulty",
                question="Take these cards out of service? A card an instance holds is refused.",
                button="Yes, mark them faulty",
                ask_reason=True,
            )
        reason = request.POST.get("reason", "")
        self._each_gpu(
            request,
            queryset,
            lambda gpu: gpu_mark_faulty(gpu=gpu, reason=reason, actor=request.user),
            done=f"faulty ({reason.strip()}).",
        )
        return None

    @admin.action(description="Return selected GPUs to service", permissions=["change"])
    def return_to_service(self, request, queryset):
        self._each_gpu(
            request,
            queryset,
            lambda gpu: gpu_return_to_service(gpu=gpu, actor=request.user),
            done="available.",
        )

    @admin.action(
        description="Mark selected GPUs cleaned (reset confirmed by hand; asks how)", permissions=["change"]
    )
    def mark_cleaned(self, request, queryset):
        if not confirmed(request):
            return action_confirmation(
                self,
                request,
                queryset.select_related("host").order_by("host__hostname", "pci_address"),
                action="mark_cleaned",
                title="Mark GPUs cleaned",
                question="Put these cleaning or quarantined cards back on sale? Say how each was cleaned "
                "(it goes in the audit log). A card an instance holds is refused.",
                button="Yes, they are clean",
                ask_reason=True,
            )
        note = request.POST.get("reason", "")
        self._each_gpu(
            request,
            queryset,
            lambda gpu: gpu_mark_cleaned(gpu=gpu, note=note, actor=request.user),
            done="cleaned, available.",
        )
        return None

    @admin.action(
        description="Retire selected GPUs (out of the fleet for good; asks why)", permissions=["change"]
    )
    def retire_gpus(self, request, queryset):
        if not confirmed(request):
            return action_confirmation(
                self,
                request,
                queryset.select_related("host").order_by("host__hostname", "pci_address"),
                action="retire_gpus",
                title="Retire GPUs",
                question="Take these cards out of the fleet for good? They are never sold again; their "
                "history stays. A card an instance holds is refused.",
                button="Yes, retire them",
                ask_reason=True,
            )
        reason = request.POST.get("reason", "")
        self._each_gpu(
            request,
            queryset,
            lambda gpu: gpu_retire(gpu=gpu, reason=reason, actor=request.user),
            done=f"retired ({reason.strip()}).",
        )
        return None


@admin.register(InstanceType)
class InstanceTypeAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "type_class", "gpus", "vcpus", "memory", "price_hourly", "price_monthly"]
    list_filter = ["type_class", "deprecated"]
    search_fields = ["id", "label"]

    @admin.display(description="Memory", ordering="memory_mib")
    def memory(self, obj: InstanceType) -> str:
        return gib(obj.memory_mib)


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "os_type", "needs_uefi", "size_mib", "public", "deprecated"]
    list_filter = ["os_type", "public", "deprecated"]
    search_fields = ["id", "label"]
