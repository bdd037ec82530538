"""Reads behind the staff dashboard: capacity with per-node detail, and who sees the GPU plans now.

Each is a fixed number of queries whatever the fleet size; the pages only lay the results out.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser
from waffle.models import Switch

from accounts.flags import GPU_INSTANCES, PROVISIONING_ENABLED, gpu_plans_visible
from accounts.models import Account
from gpuadmin.models import Flag
from inventory.models import InstanceType, NumaNode, Region
from inventory.selectors import HostCapacity, PlanSellable, RegionCapacity, region_capacity

__all__ = ["FlagAudience", "FleetOverview", "fleet_overview", "gpu_plans_audience", "gpu_sellable_by_region"]

# Listed accounts and users shown by name on the dashboard; the rest are counted.
NAMES_SHOWN = 8


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


@dataclass(frozen=True)
class FlagAudience:
    """Who the GPU-plans flag lets in, in words, and the facts behind them."""

    flag_id: int | None
    summary: str
    launched: bool
    audiences: list[str]
    visible_to_you: bool
    provisioning_enabled: bool
    switch_id: int | None


def gpu_plans_audience(*, user: AbstractBaseUser) -> FlagAudience:
    flag = Flag.objects.filter(name=GPU_INSTANCES).first()
    switch = Switch.objects.filter(name=PROVISIONING_ENABLED).first()
    visible = gpu_plans_visible(user=user)
    switch_on = bool(switch and switch.active)
    if flag is None:
        return FlagAudience(None, "Nobody: the flag does not exist", False, [], visible, switch_on, None)
    if flag.everyone:
        summary, audiences = "Everyone: GPU plans are launched", []
    elif flag.everyone is False:
        summary, audiences = "Nobody: the flag is forced off for everyone", []
    else:
        audiences = _audiences(flag)
        summary = "Only: " + "; ".join(audiences) if audiences else "Nobody: the flag lets no one in"
    return FlagAudience(
        flag.pk, summary, bool(flag.everyone), audiences, visible, switch_on, switch.pk if switch else None
    )


def _audiences(flag: Flag) -> list[str]:
    audiences = []
    if flag.employee_accounts:
        employees = Account.objects.filter(kind=Account.Kind.EMPLOYEE).count()
        audiences.append(f"every employee account ({employees})")
    accounts = flag.accounts.order_by("name").values_list("name", flat=True)
    if names := _names(accounts):
        audiences.append(f"accounts {names}")
    users = flag.users.order_by("username").values_list("username", flat=True)
    if names := _names(users):
        audiences.append(f"users {names}")
    groups = list(flag.groups.order_by("name").values_list("name", flat=True))
    if groups:
        audiences.append("groups " + ", ".join(groups))
    if flag.superusers:
        audiences.append("superusers")
    if flag.staff:
        audiences.append("staff")
    if flag.authenticated:
        audiences.append("every signed-in user")
    return audiences


def _names(names) -> str:
    """The first names of a queryset, and how many more (counted only when there are more)."""
    first = list(names[: NAMES_SHOWN + 1])
    shown = ", ".join(first[:NAMES_SHOWN])
    return f"{shown} and {names.count() - NAMES_SHOWN} more" if len(first) > NAMES_SHOWN else shown
