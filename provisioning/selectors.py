"""Reads about instances and what they hold, each in a fixed number of queries."""

from dataclasses import asdict, dataclass

from django.db.models import Count, Prefetch, Sum
from django.db.models.functions import Coalesce

from inventory.models import InstanceType
from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance, Job

__all__ = [
    "RETRYABLE",
    "AccountUsage",
    "AllocationLine",
    "account_usage",
    "active_allocations",
    "instance_live",
]


@dataclass(frozen=True)
class GpuLine:
    pci_address: str
    functions: list[str]
    numa_node: int | None
    model: str


@dataclass(frozen=True)
class CpuLine:
    vcpu: int
    cpu_id: int
    numa_node: int


@dataclass(frozen=True)
class MemoryLine:
    numa_node: int
    memory_mib: int
    hugepages_1g: int


@dataclass(frozen=True)
class AllocationLine:
    """One active allocation as staff read it: who, where, and exactly which GPUs, CPUs and memory."""

    allocation: int
    instance: int
    instance_label: str
    account: str
    plan: str
    region: str
    host: str
    created_at: str
    gpus: list[GpuLine]
    cpus: list[CpuLine]
    memory: list[MemoryLine]

    def as_dict(self) -> dict:
        return asdict(self)


def active_allocations(
    *, region: str | None = None, host: str | None = None, instance: int | None = None
) -> list[AllocationLine]:
    allocations = (
        Allocation.objects.filter(released_at__isnull=True)
        .select_related("instance__account", "host")
        .prefetch_related(
            Prefetch(
                "gpus",
                queryset=AllocatedGpu.objects.filter(released_at__isnull=True).select_related(
                    "gpu__numa_node", "gpu__model"
                ),
            ),
            Prefetch(
                "cpus",
                queryset=AllocatedCpu.objects.filter(released_at__isnull=True)
                .select_related("cpu__numa_node")
                .order_by("vcpu"),
            ),
            Prefetch("memory", queryset=AllocatedMemory.objects.select_related("numa_node")),
        )
        .order_by("host__hostname", "id")
    )
    if region is not None:
        allocations = allocations.filter(host__region_id=region)
    if host is not None:
        allocations = allocations.filter(host__hostname=host)
    if instance is not None:
        allocations = allocations.filter(instance_id=instance)
    return [
        AllocationLine(
            allocation=a.pk,
            instance=a.instance_id,
            instance_label=a.instance.label,
            account=a.instance.account.name,
            plan=a.instance_type_id,
            region=a.host.region_id,
            host=a.host.hostname,
            created_at=a.created_at.strftime("%Y-%m-%dT%H:%M:%S"),
            gpus=[
                GpuLine(
                    pci_address=g.gpu.pci_address,
                    functions=g.gpu.functions,
                    numa_node=g.gpu.numa_node.index if g.gpu.numa_node else None,
                    model=g.gpu.model.short_name,
                )
                for g in a.gpus.all()
            ],
            cpus=[
                CpuLine(vcpu=c.vcpu, cpu_id=c.cpu.cpu_id, numa_node=c.cpu.numa_node.index)
                for c in a.cpus.all()
            ],
            memory=[
                MemoryLine(numa_node=m.numa_node.index, memory_mib=m.memory_mib, hugepages_1g=m.hugepages_1g)
                for m in a.memory.all()
            ],
        )
        for a in allocations
    ]


def instance_disk_mib(*, instance: Instance) -> int:
    """The size of the instance's boot disk: its plan's, or what the volume grew to (it never shrinks)."""
    image_mib = instance.image.size_mib if instance.image_id else 0
    return max(instance.instance_type.disk_mib, image_mib, instance.disk_mib)


@dataclass(frozen=True)
class AccountUsage:
    instances: int
    gpus: int


def account_usage(*, account_id: int) -> AccountUsage:
    """What counts against an account's limits: its live instances that did not fail to provision, and
    the GPUs of their plans (an instance counts from the moment its create is accepted). One query."""
    row = (
        Instance.objects.filter(account_id=account_id, deleted_at__isnull=True)
        .exclude(status=Instance.Status.FAILED)
        .aggregate(instances=Count("id"), gpus=Coalesce(Sum("instance_type__gpus"), 0))
    )
    return AccountUsage(instances=row["instances"], gpus=row["gpus"])


# Which action each status allows, as the services check it (a job in flight allows only delete).
_POWER_ACTIONS = {
    Instance.Status.RUNNING: ("shutdown", "reboot", "resize"),
    Instance.Status.OFFLINE: ("boot", "resize"),
}


def instance_last_job(*, instance_id: int) -> Job | None:
    """The instance's newest job: the one its page follows and the only one a retry may run again."""
    return Job.objects.filter(instance_id=instance_id).order_by("-created", "-id").first()


def resize_plans(*, instance: Instance) -> list[InstanceType]:
    """The plans on sale that a resize of the instance may choose: its class and GPU model, not its own."""
    return list(
        InstanceType.objects.filter(
            type_class=instance.instance_type.type_class,
            gpu_model=instance.instance_type.gpu_model_id,
            deprecated=False,
        )
        .exclude(pk=instance.instance_type_id)
        .order_by("gpus", "id")
    )


def instance_live(*, instance_id: int) -> dict | None:
    """What the live instance page shows and polls for: status, the last job and its progress, the
    failure reason, the address, and which actions the instance's state allows now. Two queries."""
    instance = (
        Instance.objects.select_related("host", "instance_type")
        .only(
            "id", "label", "status", "status_reason", "booted", "ipv4", "ipv6", "deleted_at",
            "host__hostname", "instance_type__id", "instance_type__gpus", "account_id",
        )
        .filter(pk=instance_id)
        .first()
    )  # fmt: skip
    if instance is None:
        return None
    job = instance_last_job(instance_id=instance.pk)
    in_flight = job is not None and job.status in (Job.Status.SCHEDULED, Job.Status.STARTED)
    actions: list[str] = []
    if not in_flight:
        actions += _POWER_ACTIONS.get(instance.status, ())
    if instance.status != Instance.Status.DELETED and not (in_flight and job.action == Job.Action.DELETE):
        actions.append("delete")
    if job is not None and job.status == Job.Status.FAILED and job.action in RETRYABLE:
        actions.append("retry")
    return {
        "id": instance.pk,
        "label": instance.label,
        "status": instance.status,
        "status_label": instance.get_status_display(),
        "status_reason": instance.status_reason,
        "booted": instance.booted,
        "ipv4": list(instance.ipv4),
        "ipv6": instance.ipv6,
        "host": instance.host.hostname if instance.host_id else None,
        "plan": instance.instance_type_id,
        "job": None
        if job is None
        else {
            "id": job.pk,
            "action": job.action,
            "action_label": job.get_action_display(),
            "status": job.status,
            "percent": job.percent_complete,
            "step": job.step,
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "error": job.error,
        },
        "in_flight": in_flight,
        "actions": actions,
    }


# The failed jobs job_retry runs again (provisioning.services.RETRYABLE says why the others are not).
RETRYABLE = (
    Job.Action.CREATE,
    Job.Action.BOOT,
    Job.Action.SHUTDOWN,
    Job.Action.REBOOT,
    Job.Action.DELETE,
    Job.Action.RESIZE,
)
