"""Capacity for the dashboard and the capacity page: region_capacity with per-node detail, and what each
region can sell per GPU plan (the spin-up form)."""

from collections import defaultdict
from dataclasses import dataclass, field

from inventory.models import InstanceType, NumaNode, Region
from inventory.selectors import HostCapacity, PlanSellable, RegionCapacity, region_capacity

__all__ = ["FleetOverview", "HostLine", "NodeLine", "RegionLine", "fleet_overview", "gpu_sellable_by_region"]


# GpuCounts' buckets of cards that are neither allocated nor free, as the dashboard names them.
OUT_OF_SALE = [
    ("reserved", "reserved"),
    ("cleaning", "cleaning"),
    ("faulty", "faulty"),
    ("quarantined", "quarantined"),
    ("removed", "removed"),
    ("host_out_of_service", "host out of service"),
    ("unplaceable", "unplaceable"),
]


@dataclass(frozen=True)
class NodeLine:
    """What one NUMA node has left, from the capacity counters (placeable cards, whole cores, RAM)."""

    index: int
    free_gpus: int
    allocated_gpus: int
    free_cores: int
    free_vcpus: int
    free_memory_mib: int


@dataclass
class HostLine:
    capacity: HostCapacity
    nodes: list[NodeLine]

    @property
    def free_cores(self) -> int:
        return sum(n.free_cores for n in self.nodes)

    @property
    def free_memory_mib(self) -> int:
        return sum(n.free_memory_mib for n in self.nodes)


@dataclass
class RegionLine:
    capacity: RegionCapacity
    label: str
    hosts: list[HostLine] = field(default_factory=list)

    @property
    def sellable_gpu_plans(self) -> list[PlanSellable]:
        return [p for p in self.capacity.sellable if p.gpus]

    @property
    def out_of_sale(self) -> int:
        """Cards that are neither allocated nor free: the total of OUT_OF_SALE's buckets."""
        return sum(count for _, count in self.out_of_sale_parts)

    @property
    def out_of_sale_parts(self) -> list[tuple[str, int]]:
        """The buckets that hold cards, in words: [("cleaning", 2), ("faulty", 1)]."""
        counts = self.capacity.gpus
        return [(words, getattr(counts, name)) for name, words in OUT_OF_SALE if getattr(counts, name)]


@dataclass
class FleetOverview:
    regions: list[RegionLine]
    region_ids: list[str]


def fleet_overview(*, region: str | None = None, with_hosts: bool = True) -> FleetOverview:
    """region_capacity's numbers per region and GPU model, each host with its nodes' free resources."""
    regions = {r.id: r.label for r in Region.objects.all()}
    summaries = region_capacity(region=region if region in regions else None, with_hosts=with_hosts)
    nodes: dict[int, list[NodeLine]] = defaultdict(list)
    if with_hosts:
        rows = NumaNode.objects.order_by("host_id", "index").values_list(
            "host_id",
            "index",
            "free_gpus",
            "allocated_gpus",
            "free_cores",
            "threads_per_core",
            "memory_mib",
            "reserved_memory_mib",
            "used_memory_mib",
        )
        if region in regions:
            rows = rows.filter(host__region_id=region)
        for host_id, index, gpus, allocated, cores, tpc, memory, reserved, used in rows:
            nodes[host_id].append(
                NodeLine(index, gpus, allocated, cores, cores * tpc, memory - reserved - used)
            )
    lines = [
        RegionLine(
            capacity=summary,
            label=regions.get(summary.region, ""),
            hosts=[HostLine(h, nodes.get(h.host_id, [])) for h in summary.per_host],
        )
        for summary in summaries
    ]
    return FleetOverview(regions=lines, region_ids=sorted(regions))


def gpu_sellable_by_region() -> dict[str, dict[str, int]]:
    """How many more of each GPU plan each region can sell now: {region: {plan: count}}, every region
    and every GPU plan present (0 where nothing fits). region_capacity's simulation, without the hosts."""
    plans = list(
        InstanceType.objects.filter(type_class=InstanceType.TypeClass.GPU, deprecated=False).values_list(
            "id", flat=True
        )
    )
    sellable = {
        region_id: dict.fromkeys(plans, 0) for region_id in Region.objects.values_list("id", flat=True)
    }
    for summary in region_capacity(with_hosts=False):
        for plan in summary.sellable:
            if plan.plan in sellable.get(summary.region, {}):
                sellable[summary.region][plan.plan] += plan.sellable
    return sellable
