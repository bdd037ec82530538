"""Reads about instances and what they hold, each in a fixed number of queries."""

from dataclasses import asdict, dataclass

from django.db.models import Count, Prefetch, Sum
from django.db.models.functions import Coalesce

from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance

__all__ = ["AccountUsage", "AllocationLine", "account_usage", "active_allocations"]


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
