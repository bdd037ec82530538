from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from accounts.admin import origin_text
from accounts.models import Origin
from gpuadmin.display import minute
from inventory.admin import action_confirmation, confirmed
from inventory.models import InstanceType
from provisioning.exceptions import InvalidRequest, ProvisioningError
from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance, Job
from provisioning.selectors import active_allocations, instance_last_job, instance_live, resize_plans
from provisioning.services import (
    instance_boot,
    instance_delete,
    instance_reboot,
    instance_resize,
    instance_shutdown,
    job_retry,
)

JOBS_SHOWN = 20


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "account", "region", "plan", "status", "host", "address", "created_at"]
    list_filter = ["status", "region", "instance_type"]
    search_fields = ["label", "account__name", "host__hostname"]
    list_select_related = ["account", "region", "instance_type", "host"]
    readonly_fields = ["domain_uuid", "created", "updated", "deleted_at", "cloud_init_user_data"]
    change_form_template = "admin/provisioning/instance/change_form.html"
    actions = ["boot", "shut_down", "reboot", "delete_instances"]
    detail_fieldsets = [
        (
            None,
            {
                "fields": [
                    "label",
                    "account",
                    "region",
                    "instance_type",
                    "image",
                    "booted",
                ]
            },
        ),
        ("What it holds", {"fields": ["allocation_held"]}),
        ("Jobs", {"fields": ["recent_jobs"]}),
        (
            "Details",
            {
                "classes": ["collapse"],
                "fields": [
                    "group",
                    "tags",
                    "ipv4",
                    "ipv6",
                    "domain_uuid",
                    "created",
                    "updated",
                    "deleted_at",
                    "cloud_init_user_data",
                ],
            },
        ),
    ]

    # Status, reason, address and host are in the live panel above the fields (they change while one reads).
    # An instance changes only through provisioning.services (jobs, allocations, audit rows): its page
    # shows it, the actions act on it, and "add" is the spin-up form.
    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return [f.name for f in Instance._meta.fields] + ["allocation_held", "recent_jobs"]

    def get_fieldsets(self, request, obj=None):
        return self.detail_fieldsets if obj is not None else super().get_fieldsets(request, obj)

    def add_view(self, request, form_url="", extra_context=None):
        query = request.GET.urlencode()
        return redirect(reverse("admin:spin_up") + (f"?{query}" if query else ""))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        hidden = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**hidden, **(extra_context or {})})

    # The live page: the panel at its top polls live_view while a job is in flight, and its buttons post
    # to act_view, which calls the service the API calls (the service writes the audit row).
    ONE_CLICK = {"boot": (instance_boot, "booting"), "shutdown": (instance_shutdown, "shutting down"),
                 "reboot": (instance_reboot, "rebooting")}  # fmt: skip

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:instance_id>/live/", view(self.live_view), name="provisioning_instance_live"),
            path(
                "<int:instance_id>/act/<str:action>/", view(self.act_view), name="provisioning_instance_act"
            ),
            *super().get_urls(),
        ]

    def allowed_actions(self, request, live: dict) -> list[str]:
        """The instance's actions now (instance_live) that this staff member may take."""
        return [a for a in live["actions"] if self.may(request, a)]

    def may(self, request, action: str) -> bool:
        """Delete needs provisioning.delete_instance; every other button the change permission."""
        return (
            self.has_destroy_permission(request)
            if action == "delete"
            else self.has_change_permission(request)
        )

    def live_view(self, request, instance_id: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        live = instance_live(instance_id=instance_id)
        if live is None:
            raise Http404
        return JsonResponse({**live, "actions": self.allowed_actions(request, live)})

    def act_view(self, request, instance_id: int, action: str):
        instance = get_object_or_404(Instance.objects.select_related("instance_type"), pk=instance_id)
        page = reverse("admin:provisioning_instance_change", args=[instance.pk])
        if not self.may(request, action):
            raise PermissionDenied
        if action not in ("boot", "shutdown", "reboot", "resize", "delete", "retry"):
            raise Http404
        plans = resize_plans(instance=instance) if action == "resize" else []
        if request.method != "POST" and action in ("resize", "delete"):
            context = {
                **self.admin_site.each_context(request),
                "title": f"{'Resize' if action == 'resize' else 'Delete'} {instance}",
                "instance": instance,
                "action": action,
                "plans": plans,
                "opts": self.model._meta,
                "back": page,
            }
            return TemplateResponse(request, "admin/provisioning/instance/act.html", context)
        if request.method != "POST":
            return redirect(page)
        try:
            job, doing = self._act(request, instance, action, plans)
        except ProvisioningError as exc:
            self.message_user(request, f"{instance}: {exc.message}", messages.ERROR)
        else:
            self.message_user(request, f"{instance}: {doing} (job {job.pk}).", messages.SUCCESS)
        return redirect(page)

    def _act(self, request, instance: Instance, action: str, plans: list[InstanceType]) -> tuple[Job, str]:
        who = {"actor": request.user, "origin": Origin.STAFF}
        if action in self.ONE_CLICK:
            service, doing = self.ONE_CLICK[action]
            return service(instance=instance, **who), doing
        if action == "delete":
            return instance_delete(instance=instance, **who), "deleting"
        if action == "resize":
            plan = next((p for p in plans if p.pk == request.POST.get("plan")), None)
            if plan is None:
                raise InvalidRequest("Choose one of the plans offered.", field="type")
            return instance_resize(instance=instance, plan=plan, **who), f"resizing to {plan.pk}"
        last = instance_last_job(instance_id=instance.pk)
        if last is None:
            raise InvalidRequest("The instance has no job to retry.")
        job = job_retry(job=last, **who)
        return job, f"retrying its failed {last.get_action_display().lower()} job {last.pk}"

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            live = instance_live(instance_id=obj.pk)
            context = {**context, "live": {**live, "actions": self.allowed_actions(request, live)}}
        return super().render_change_form(request, context, add, change, form_url, obj)

    # Django's own delete would remove rows under a running domain; the delete action calls the service.
    def has_delete_permission(self, request, obj=None):
        return False

    def has_destroy_permission(self, request):
        return request.user.has_perm("provisioning.delete_instance")

    @admin.display(description="Plan", ordering="instance_type_id")
    def plan(self, obj: Instance) -> str:
        return obj.instance_type_id

    @admin.display(description="Address")
    def address(self, obj: Instance) -> str:
        return ", ".join(obj.ipv4) or "-"

    @admin.display(description="Created (UTC)", ordering="created")
    def created_at(self, obj: Instance) -> str:
        return minute(obj.created)

    @admin.display(description="Allocation")
    def allocation_held(self, obj: Instance) -> str:
        lines = active_allocations(instance=obj.pk)
        return render_to_string(
            "admin/provisioning/instance/allocation.html",
            {"allocation": lines[0] if lines else None, "instance": obj},
        )

    @admin.display(description="Recent jobs")
    def recent_jobs(self, obj: Instance) -> str:
        jobs = list(obj.jobs.order_by("-id")[: JOBS_SHOWN + 1])
        return render_to_string(
            "admin/provisioning/instance/jobs.html",
            {"jobs": jobs[:JOBS_SHOWN], "more": len(jobs) > JOBS_SHOWN, "instance": obj},
        )

    @admin.action(description="Boot selected instances", permissions=["change"])
    def boot(self, request, queryset):
        self._power(request, queryset, instance_boot, "booting")

    @admin.action(description="Shut down selected instances", permissions=["change"])
    def shut_down(self, request, queryset):
        self._power(request, queryset, instance_shutdown, "shutting down")

    @admin.action(description="Reboot selected instances", permissions=["change"])
    def reboot(self, request, queryset):
        self._power(request, queryset, instance_reboot, "rebooting")

    @admin.action(
        description="Delete selected instances (destroys the VMs, frees their GPUs)", permissions=["destroy"]
    )
    def delete_instances(self, request, queryset):
        if not confirmed(request):
            return action_confirmation(
                self,
                request,
                queryset.order_by("pk"),
                action="delete_instances",
                title="Delete instances",
                question="Delete these instances? Their VMs are destroyed and their GPUs, cores and memory "
                "released; billing stops. This cannot be undone.",
                button="Yes, delete them",
            )
        self._power(request, queryset, instance_delete, "deleting")
        return None

    def _power(self, request, queryset, service, doing: str) -> None:
        # One message per instance: a busy one says so and the others still go ahead.
        for instance in queryset.order_by("pk"):
            try:
                job = service(instance=instance, actor=request.user, origin=Origin.STAFF)
            except ProvisioningError as exc:
                self.message_user(request, f"{instance}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{instance}: {doing} (job {job.pk}).", messages.SUCCESS)


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


class ActiveFilter(admin.SimpleListFilter):
    title = "held"
    parameter_name = "held"

    def lookups(self, request, model_admin):
        return [("now", "held now"), ("released", "released")]

    def queryset(self, request, queryset):
        if self.value() == "now":
            return queryset.filter(released_at__isnull=True)
        if self.value() == "released":
            return queryset.filter(released_at__isnull=False)
        return queryset


@admin.register(Allocation)
class AllocationAdmin(admin.ModelAdmin):
    """Who holds what where: account and cards on every row (the rows are the history, never edited)."""

    list_display = [
        "id",
        "instance",
        "account",
        "host",
        "gpu_addresses",
        "plan",
        "held_from",
        "held_until",
    ]
    list_filter = [ActiveFilter, "host__region"]
    search_fields = ["instance__label", "instance__account__name", "host__hostname", "gpus__gpu__pci_address"]
    list_select_related = ["instance__account", "host", "instance_type"]
    inlines = [AllocatedGpuInline, AllocatedCpuInline, AllocatedMemoryInline]

    def get_queryset(self, request):
        gpus = Prefetch(
            "gpus", queryset=AllocatedGpu.objects.select_related("gpu").order_by("gpu__pci_address")
        )
        return super().get_queryset(request).prefetch_related(gpus)

    @admin.display(description="Account", ordering="instance__account__name")
    def account(self, obj: Allocation) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:accounts_account_change", args=[obj.instance.account_id]),
            obj.instance.account,
        )

    @admin.display(description="Plan", ordering="instance_type_id")
    def plan(self, obj: Allocation) -> str:
        return obj.instance_type_id

    @admin.display(description="From (UTC)", ordering="created_at")
    def held_from(self, obj: Allocation) -> str:
        return minute(obj.created_at)

    @admin.display(description="Until (UTC)", ordering="released_at")
    def held_until(self, obj: Allocation) -> str:
        return minute(obj.released_at) if obj.released_at else "held now"

    @admin.display(description="GPUs")
    def gpu_addresses(self, obj: Allocation) -> str:
        return ", ".join(row.gpu.pci_address for row in obj.gpus.all()) or "-"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    """Jobs are the record of what happened to an instance: read-only, and never deleted."""

    list_display = [
        "id",
        "action",
        "instance",
        "account",
        "started_by",
        "status_and_progress",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "action", "origin"]
    search_fields = ["instance__label", "account__name", "actor__username", "error"]
    list_select_related = ["instance", "account", "actor"]
    readonly_fields = [f.name for f in Job._meta.fields]

    @admin.display(description="Origin", ordering="origin")
    def started_by(self, obj: Job) -> str:
        return origin_text(obj.origin, obj.actor)

    @admin.display(description="Created (UTC)", ordering="created")
    def created_at(self, obj: Job) -> str:
        return minute(obj.created)

    @admin.display(description="Finished (UTC)", ordering="finished")
    def finished_at(self, obj: Job) -> str:
        return minute(obj.finished)

    @admin.display(description="Status", ordering="status")
    def status_and_progress(self, obj: Job) -> str:
        """One column: "Finished", or "Started: 60% define" while it runs (the list fits 1280 px)."""
        if obj.status in (Job.Status.SCHEDULED, Job.Status.STARTED):
            return f"{obj.get_status_display()}: {self.progress(obj)}"
        return obj.get_status_display()

    @admin.display(description="Progress", ordering="percent_complete")
    def progress(self, obj: Job) -> str:
        return f"{obj.percent_complete}%" + (f" {obj.step}" if obj.step and obj.status == "started" else "")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
