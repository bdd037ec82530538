from django.contrib import admin, messages

from inventory.models import GpuDevice, GpuModel, Host, HostCpu, Image, InstanceType, NumaNode, Region
from inventory.sync import HostSyncError, host_sync


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "country", "status"]
    list_filter = ["status", "country"]
    search_fields = ["id", "label"]


@admin.register(GpuModel)
class GpuModelAdmin(admin.ModelAdmin):
    list_display = ["name", "short_name", "pci_id", "vram_mib"]
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
    readonly_fields = ["used_memory_mib", "hugepages_1g_used"]
    show_change_link = True


class GpuDeviceInline(admin.TabularInline):
    model = GpuDevice
    extra = 0
    fields = ["pci_address", "model", "numa_node", "iommu_group", "state", "state_reason"]
    readonly_fields = ["pci_address", "model", "numa_node", "iommu_group"]
    show_change_link = True


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = ["hostname", "region", "kind", "state", "generation", "last_synced_at"]
    list_filter = ["region", "kind", "state"]
    search_fields = ["hostname"]
    readonly_fields = ["generation", "last_synced_at", "created"]
    inlines = [NumaNodeInline, GpuDeviceInline]
    actions = ["sync_from_libvirt"]

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
    readonly_fields = ["used_memory_mib", "hugepages_1g_used"]


@admin.register(HostCpu)
class HostCpuAdmin(admin.ModelAdmin):
    list_display = ["host", "cpu_id", "numa_node", "core_id", "socket_id", "siblings", "reserved"]
    list_filter = ["reserved", "host__region"]
    search_fields = ["host__hostname"]
    list_select_related = ["host", "numa_node__host"]


@admin.register(GpuDevice)
class GpuDeviceAdmin(admin.ModelAdmin):
    list_display = ["pci_address", "host", "model", "numa_node", "iommu_group", "state", "missing_since"]
    list_filter = ["state", "model", "host__region"]
    search_fields = ["host__hostname", "pci_address"]
    list_select_related = ["host", "model", "numa_node__host"]
    readonly_fields = ["missing_since"]


@admin.register(InstanceType)
class InstanceTypeAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "label",
        "type_class",
        "gpus",
        "vcpus",
        "memory_mib",
        "price_hourly",
        "price_monthly",
    ]
    list_filter = ["type_class", "deprecated"]
    search_fields = ["id", "label"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "os_type", "needs_uefi", "size_mib", "public", "deprecated"]
    list_filter = ["os_type", "public", "deprecated"]
    search_fields = ["id", "label"]
