from django.contrib import admin

from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance, Job


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "account", "region", "instance_type", "status", "host", "created"]
    list_filter = ["status", "region", "instance_type"]
    search_fields = ["label", "account__name", "host__hostname"]
    list_select_related = ["account", "region", "instance_type", "host"]
    readonly_fields = ["domain_uuid", "created", "updated", "deleted_at", "cloud_init_user_data"]


class AllocatedGpuInline(admin.TabularInline):
    model = AllocatedGpu
    extra = 0
    can_delete = False
    readonly_fields = ["gpu", "released_at"]


class AllocatedCpuInline(admin.TabularInline):
    model = AllocatedCpu
    extra = 0
    can_delete = False
    readonly_fields = ["vcpu", "cpu", "released_at"]


class AllocatedMemoryInline(admin.TabularInline):
    model = AllocatedMemory
    extra = 0
    can_delete = False
    readonly_fields = ["numa_node", "memory_mib", "hugepages_1g"]


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    list_display = ["id", "instance", "host", "instance_type", "created_at", "released_at"]
    list_filter = ["host__region"]
    search_fields = ["instance__label", "host__hostname"]
    list_select_related = ["instance", "host", "instance_type"]
    inlines = [AllocatedGpuInline, AllocatedCpuInline, AllocatedMemoryInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "action",
        "instance",
        "status",
        "percent_complete",
        "attempts",
        "created",
        "finished",
    ]
    list_filter = ["action", "status"]
    search_fields = ["instance__label", "error"]
    list_select_related = ["instance"]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False
