"""Capacity: what the fleet holds, what is taken, and how many more of each plan can be sold now.

Every GPU is counted in exactly one bucket, so the numbers add up:

    total = allocated + free + unplaceable + host_out_of_service
            + reserved + cleaning + faulty + quarantined + removed

`allocated` wins over the card's state (a card marked faulty while a guest holds it is still
allocated). `free` cards are available, in no active allocation, placeable and on an enabled host;
`stranded` is the part of `free` that the node's cores or RAM can no longer feed (at the leanest
plan's vCPUs and memory per GPU). `sellable` simulates placing one plan again and again on a
snapshot, host by host, as a claim would. A fixed number of queries whatever the fleet size.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta

from django.db.models import CharField, F, OuterRef, Subquery, Sum, TextField
from django.db.models.functions import Cast

from accounts.models import AuditRecord
from inventory.counters import active_allocation_exists, shared_iommu_groups, unplaceable_reason
from inventory.fit import (
    GPU_HOST,
    HostFree,
    NodeFree,
    Shape,
    feedable_gpus,
    host_signature,
    host_splits,
    sellable_on_signature,
)
from inventory.models import (
    CapacitySample,
    GpuDevice,
    GpuModel,
    Host,
    HostCpu,
    InstanceType,
    NumaNode,
    Region,
)

__all__ = [
    "CAPACITY_WINDOWS",
    "CapacityHistory",
    "CustomerGpuState",
    "GpuCounts",
    "HolderLine",
    "HostCapacity",
    "PlanSellable",
    "RegionCapacity",
    "TopologyCpu",
    "TopologyNode",
    "topology_accounts",
    "capacity_history",
    "CapacityRows",
    "capacity_rows",
    "capacity_snapshot",
    "gpu_bucket",
    "selling_plans",
    "snapshot_of",
    "summarize",
    "gpu_customer_state",
    "gpu_holder_history",
    "gpu_since",
    "gpus_with_holders",
    "host_capacity",
    "host_topology",
    "host_snapshots",
    "plan_available",
    "selling_nodes",
    "region_capacity",
]


@dataclass
class GpuCounts:
    total: int = 0
    allocated: int = 0
    free: int = 0
    stranded: int = 0
    unplaceable: int = 0
    host_out_of_service: int = 0
    reserved: int = 0
    cleaning: int = 0
    faulty: int = 0
    quarantined: int = 0
    removed: int = 0

    # The buckets that partition `total`; `stranded` is a part of `free`.
    BUCKETS = (
        "allocated",
        "free",
        "unplaceable",
        "host_out_of_service",
        "reserved",
        "cleaning",
        "faulty",
        "quarantined",
        "removed",
    )

    def add(self, other: "GpuCounts") -> None:
        for name in _COUNT_NAMES:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _COUNT_NAMES}


_COUNT_NAMES = tuple(f.name for f in fields(GpuCounts))


@dataclass(frozen=True)
class PlanSellable:
    plan: str
    label: str
    gpus: int
    sellable: int


@dataclass
class HostCapacity:
    host_id: int
    hostname: str
    region: str
    kind: str
    state: str
    gpu_model: str
    gpus: GpuCounts = field(default_factory=GpuCounts)
    sellable: list[PlanSellable] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "hostname": self.hostname,
            "region": self.region,
            "kind": self.kind,
            "state": self.state,
            "gpu_model": self.gpu_model,
            "gpus": self.gpus.as_dict(),
            "sellable": {p.plan: p.sellable for p in self.sellable},
        }


@dataclass
class RegionCapacity:
    """One region and one GPU model; kind "standard" (gpu_model "") for the region's standard hosts, and
    kind "gpu" with gpu_model "" for GPU hosts that hold no card yet."""

    region: str
    gpu_model: str
    gpu_model_name: str
    kind: str = GPU_HOST
    hosts: int = 0
    hosts_enabled: int = 0
    gpus: GpuCounts = field(default_factory=GpuCounts)
    sellable: list[PlanSellable] = field(default_factory=list)
    per_host: list[HostCapacity] = field(default_factory=list)

    def as_dict(self, *, with_hosts: bool = False) -> dict:
        data = {
            "region": self.region,
            "kind": self.kind,
            "gpu_model": self.gpu_model,
            "hosts": self.hosts,
            "hosts_enabled": self.hosts_enabled,
            "gpus": self.gpus.as_dict(),
            "sellable": {p.plan: p.sellable for p in self.sellable},
        }
        if with_hosts:
            data["per_host"] = [h.as_dict() for h in self.per_host]
        return data


@dataclass
class CapacitySnapshot:
    """Rows read once: hosts, their node counters as HostFree, and the GPU buckets per host."""

    hosts: dict[int, Host]
    free: dict[int, HostFree]
    counts: dict[tuple[int, int | None], GpuCounts]  # (host_id, model_id) -> counts
    models: dict[int, GpuModel]


@dataclass
class CapacityRows:
    """The rows a snapshot is computed from, as read: a what-if changes these before classifying.

    nodes: (host_id, node_id, index, free_cores, threads_per_core, memory_mib, reserved_memory_mib,
    used_memory_mib, hugepages_1g_total, hugepages_1g_used, gpu_model_id);
    gpus: (host_id, numa_node_id, model_id, state, iommu_group, foreign functions as JSON text,
    in an active allocation, pci_address).
    """

    hosts: dict[int, Host]
    nodes: list[tuple]
    gpus: list[tuple]
    models: dict[int, GpuModel]


def capacity_rows(
    *, region: Region | str | None = None, host_ids: Iterable[int] | None = None
) -> CapacityRows:
    hosts_qs = Host.objects.all()
    if region is not None:
        hosts_qs = hosts_qs.filter(region=region)
    if host_ids is not None:
        hosts_qs = hosts_qs.filter(pk__in=list(host_ids))
    hosts = {h.pk: h for h in hosts_qs.only("id", "hostname", "region_id", "kind", "state")}
    nodes = list(
        NumaNode.objects.filter(host__in=hosts_qs.values("pk"))
        .order_by("host_id", "index")
        .values_list(
            "host_id",
            "id",
            "index",
            "free_cores",
            "threads_per_core",
            "memory_mib",
            "reserved_memory_mib",
            "used_memory_mib",
            "hugepages_1g_total",
            "hugepages_1g_used",
            "gpu_model_id",
        )
    )
    # The IOMMU neighbours as text: "[]" for nearly every card, and parsing 80,000 JSON lists is slow.
    gpus = list(
        GpuDevice.objects.filter(host__in=hosts_qs.values("pk"))
        .annotate(active=active_allocation_exists(GpuDevice), foreign=Cast("foreign_functions", TextField()))
        .values_list(
            "host_id", "numa_node_id", "model_id", "state", "iommu_group", "foreign", "active", "pci_address"
        )
    )
    models = {m.pk: m for m in GpuModel.objects.all()}
    return CapacityRows(hosts=hosts, nodes=nodes, gpus=gpus, models=models)


def capacity_snapshot(
    *, region: Region | str | None = None, host_ids: Iterable[int] | None = None
) -> CapacitySnapshot:
    return snapshot_of(capacity_rows(region=region, host_ids=host_ids))


def gpu_bucket(gpu: tuple, *, hosts: dict[int, Host], node_model: dict, shared: set) -> str:
    """The GpuCounts bucket one card of CapacityRows.gpus is counted in."""
    host_id, node_id, model_id, state, group, foreign, active, *_ = gpu
    if active:
        return "allocated"
    if state != GpuDevice.State.AVAILABLE:
        return state
    if unplaceable_reason(
        numa_node_id=node_id,
        model_id=model_id,
        node_model_id=node_model.get(node_id),
        foreign_functions=() if foreign in ("[]", "") else json.loads(foreign),
        shares_iommu_group=(host_id, group) in shared,
    ):
        return "unplaceable"
    if hosts[host_id].state != Host.State.ENABLED:
        return "host_out_of_service"
    return "free"


def snapshot_of(rows: CapacityRows) -> CapacitySnapshot:
    """Classify the rows: each card in one bucket, each node's placeable free cards, as HostFree."""
    hosts, nodes, gpus = rows.hosts, rows.nodes, rows.gpus
    node_model = {row[1]: row[10] for row in nodes}
    shared = shared_iommu_groups((g[0], g[4]) for g in gpus)
    counts: dict[tuple[int, int | None], GpuCounts] = defaultdict(GpuCounts)
    free_on_node: dict[int, int] = defaultdict(int)
    for gpu in gpus:
        bucket = counts[(gpu[0], gpu[2])]
        bucket.total += 1
        name = gpu_bucket(gpu, hosts=hosts, node_model=node_model, shared=shared)
        setattr(bucket, name, getattr(bucket, name) + 1)
        if name == "free":
            free_on_node[gpu[1]] += 1
    grouped: dict[int, list[NodeFree]] = defaultdict(list)
    for host_id, node_id, index, cores, tpc, memory, reserved, used, hp_total, hp_used, model_id in nodes:
        grouped[host_id].append(
            NodeFree(
                node_id=node_id,
                index=index,
                free_gpus=free_on_node.get(node_id, 0),
                free_cores=cores,
                threads_per_core=tpc,
                free_memory_mib=memory - reserved - used,
                free_hugepages_1g=hp_total - hp_used,
                gpu_model_id=model_id,
            )
        )
    free = {
        host_id: HostFree(host_id, host.hostname, tuple(grouped.get(host_id, ())), host.kind)
        for host_id, host in hosts.items()
    }
    return CapacitySnapshot(hosts=hosts, free=free, counts=dict(counts), models=rows.models)


def region_capacity(*, region: Region | str | None = None, with_hosts: bool = True) -> list[RegionCapacity]:
    """Capacity per region and GPU model (and one entry per region for its standard hosts)."""
    snapshot = capacity_snapshot(region=region)
    return summarize(snapshot, selling_plans(), with_hosts=with_hosts)


def selling_plans() -> list[InstanceType]:
    """The plans capacity is counted for, in the order the pages list them."""
    return list(InstanceType.objects.filter(deprecated=False).order_by("gpus", "vcpus", "id"))


def host_capacity(*, host: Host) -> list[HostCapacity]:
    """The same numbers for one host, one entry per GPU model it holds."""
    snapshot = capacity_snapshot(host_ids=[host.pk])
    return [h for rc in summarize(snapshot, selling_plans(), with_hosts=True) for h in rc.per_host]


def summarize(
    snapshot: CapacitySnapshot, plans: Sequence[InstanceType], *, with_hosts: bool
) -> list[RegionCapacity]:
    """Per region and GPU model: the buckets added up, stranded and sellable per plan (per host too)."""
    by_model: dict[int | None, list[tuple[InstanceType, Shape]]] = defaultdict(list)
    for plan in plans:
        if plan.is_gpu:
            by_model[plan.gpu_model_id].append((plan, Shape.of(plan)))
        elif plan.type_class in (InstanceType.TypeClass.STANDARD, InstanceType.TypeClass.DEDICATED):
            by_model[None].append((plan, Shape.of(plan)))
    regions: dict[tuple[str, str, int | None], RegionCapacity] = {}
    per_state: dict[tuple, tuple[int, list[PlanSellable]]] = {}
    sellable_totals: dict[int, dict[str, PlanSellable]] = {}
    models_of_host: dict[int, list[int | None]] = defaultdict(list)
    for host_id, model_id in snapshot.counts:
        models_of_host[host_id].append(model_id)
    for host_id, host in sorted(snapshot.hosts.items(), key=lambda item: item[1].hostname):
        model_ids = models_of_host.get(host_id, []) if host.kind == GPU_HOST else [None]
        for model_id in model_ids or [None]:
            model = snapshot.models.get(model_id)
            key = (host.region_id, host.kind, model_id)
            summary = regions.get(key)
            if summary is None:
                summary = regions[key] = RegionCapacity(
                    region=host.region_id,
                    gpu_model=model.short_name if model else "",
                    gpu_model_name=model.name if model else "",
                    kind=host.kind,
                )
            counts = snapshot.counts.get((host_id, model_id), GpuCounts())
            enabled = host.state == Host.State.ENABLED
            free = snapshot.free[host_id]
            # Hosts in the same state give the same answer: compute it once per state.
            state = (host_signature(free), model_id, enabled, host.kind)
            if state not in per_state:
                per_state[state] = _host_answer(free, state[0], model_id, enabled, host.kind, by_model)
            counts.stranded, sellable = per_state[state]
            summary.hosts += 1
            summary.hosts_enabled += enabled
            summary.gpus.add(counts)
            totals = sellable_totals.setdefault(id(summary), {})
            for p in sellable:
                if p.plan not in totals:
                    totals[p.plan] = p
                else:
                    totals[p.plan] = replace(totals[p.plan], sellable=totals[p.plan].sellable + p.sellable)
            if with_hosts:
                summary.per_host.append(
                    HostCapacity(
                        host_id=host_id,
                        hostname=host.hostname,
                        region=host.region_id,
                        kind=host.kind,
                        state=host.state,
                        gpu_model=summary.gpu_model,
                        gpus=counts,
                        sellable=list(sellable),
                    )
                )
    for summary in regions.values():
        summary.sellable = list(sellable_totals.get(id(summary), {}).values())
    return sorted(regions.values(), key=lambda rc: (rc.region, rc.kind, rc.gpu_model == "", rc.gpu_model))


def _host_answer(
    free: HostFree, signature: tuple, model_id: int | None, enabled: bool, kind: str, by_model: dict
) -> tuple[int, list[PlanSellable]]:
    """(stranded GPUs, sellable per plan) of one host."""
    shapes = [shape for _, shape in by_model.get(model_id, [])]
    stranded = (
        sum(max(0, n.free_gpus - feedable_gpus(n, shapes)) for n in free.nodes if n.gpu_model_id == model_id)
        if model_id is not None
        else 0
    )
    sellable = [
        PlanSellable(
            plan.id, plan.label, plan.gpus, sellable_on_signature(signature, shape) if enabled else 0
        )
        for plan, shape in by_model.get(model_id, [])
        if (kind == GPU_HOST) == bool(shape.gpus)
    ]
    return stranded, sellable


def selling_nodes(*, shape: Shape, region: Region | str):
    """The NUMA nodes of `region` that sell `shape`'s kind (its GPU model, or no GPU) and have some of
    it free, on enabled hosts of the right kind: a queryset, from the counters."""
    nodes = NumaNode.objects.filter(
        host__region=region, host__kind=shape.host_kind, host__state=Host.State.ENABLED
    )
    if shape.gpus:
        return nodes.filter(gpu_model_id=shape.gpu_model_id, free_gpus__gt=0)
    return nodes.filter(gpu_model__isnull=True, free_cores__gt=0)


def host_snapshots(*, host_ids, kind: str) -> list[HostFree]:
    """Every node of the given hosts (a list, or a subquery of host ids) as HostFree snapshots, from
    the counters, hosts in id order."""
    nodes = (
        NumaNode.objects.filter(host_id__in=host_ids)
        .order_by("host_id", "index")
        .values_list(
            "host_id",
            "host__hostname",
            "id",
            "index",
            "free_gpus",
            "free_cores",
            "threads_per_core",
            "memory_mib",
            "reserved_memory_mib",
            "used_memory_mib",
            "hugepages_1g_total",
            "hugepages_1g_used",
            "gpu_model_id",
        )
    )
    hosts: dict[int, tuple[str, list[NodeFree]]] = {}
    for host_id, hostname, node_id, index, gpus, cores, tpc, mib, res, used, pages, taken, model in nodes:
        node = NodeFree(node_id, index, gpus, cores, tpc, mib - res - used, pages - taken, model)
        hosts.setdefault(host_id, (hostname, []))[1].append(node)
    return [HostFree(host_id, name, tuple(nodes), kind) for host_id, (name, nodes) in hosts.items()]


def plan_available(*, plan: InstanceType, region: Region | str) -> bool:
    """Whether one more instance of `plan` can be placed in `region` now (from the counters)."""
    shape = Shape.of(plan)
    nodes = selling_nodes(shape=shape, region=region)
    fits_one_node = (
        nodes.filter(free_gpus__gte=shape.gpus)
        .alias(
            free_vcpus=F("free_cores") * F("threads_per_core"),
            free_memory=F("memory_mib") - F("reserved_memory_mib") - F("used_memory_mib"),
        )
        .filter(free_vcpus__gte=shape.vcpus, free_memory__gte=shape.memory_mib)
    )
    if fits_one_node.exists():
        return True
    total = Sum("free_gpus") if shape.gpus else Sum(F("free_cores") * F("threads_per_core"))
    host_ids = nodes.values("host_id").annotate(total=total).filter(total__gte=shape.gpus or shape.vcpus)
    hosts = host_snapshots(host_ids=host_ids.values("host_id"), kind=shape.host_kind)
    return any(host_splits(host, shape) for host in hosts)


@dataclass(frozen=True)
class TopologyGpu:
    gpu_id: int
    pci_address: str
    functions: list[str]
    model: str
    state: str
    state_reason: str
    holder_id: int | None  # the instance whose active allocation holds the card
    holder_label: str
    account_id: int | None = None  # the holder's account
    account_name: str = ""


@dataclass(frozen=True)
class TopologyCpu:
    """One hardware thread: reserved for the host, free, or pinned to an instance of an account."""

    cpu_id: int
    reserved: bool
    holder_id: int | None
    holder_label: str
    account_id: int | None
    account_name: str


@dataclass(frozen=True)
class TopologyNode:
    """One NUMA node as staff read it; `index` None gathers the cards the firmware puts on no node."""

    index: int | None
    memory_mib: int = 0
    reserved_memory_mib: int = 0
    used_memory_mib: int = 0
    hugepages_1g_total: int = 0
    hugepages_1g_used: int = 0
    free_cores: int = 0
    threads_per_core: int = 1
    cpus: list[int] = field(default_factory=list)
    reserved_cpus: list[int] = field(default_factory=list)
    held_cpus: dict[tuple[int, str], list[int]] = field(default_factory=dict)  # (instance, label) -> cpus
    gpus: list[TopologyGpu] = field(default_factory=list)
    threads: list[TopologyCpu] = field(default_factory=list)
    holder_accounts: dict[int, str] = field(default_factory=dict)  # instance -> account name

    @property
    def free_memory_mib(self) -> int:
        return self.memory_mib - self.reserved_memory_mib - self.used_memory_mib

    @property
    def held(self) -> list[tuple[int, str, str, str]]:
        """(instance, label, its CPUs as ranges, its account) per instance pinned to this node."""
        return [
            (i, label, id_ranges(cpus), self.holder_accounts.get(i, ""))
            for (i, label), cpus in sorted(self.held_cpus.items())
        ]

    @property
    def cpu_ranges(self) -> str:
        return id_ranges(self.cpus)

    @property
    def reserved_ranges(self) -> str:
        return id_ranges(self.reserved_cpus)


def id_ranges(ids: Iterable[int]) -> str:
    """CPU ids the way Linux writes cpusets: 0-3,8,10-11."""
    parts: list[str] = []
    for cpu in sorted(ids):
        if parts and cpu == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{cpu}"
        else:
            parts.append(str(cpu))
    return ",".join(parts)


def host_topology(*, host: Host) -> list[TopologyNode]:
    """A host's NUMA nodes with their memory, CPUs and cards, and which instance holds each. Three queries.

    Holders are read through the reverse relations of the allocation rows, so inventory does not import
    provisioning.
    """

    def holder(model: type[GpuDevice] | type[HostCpu], column: str) -> Subquery:
        relation = model._meta.get_field("allocations")
        held = relation.related_model.objects.filter(
            **{relation.field.name: OuterRef("pk")}, released_at__isnull=True
        )
        return Subquery(held.values(column)[:1])

    nodes = {n.pk: n for n in NumaNode.objects.filter(host=host).order_by("index")}
    cpus = (
        HostCpu.objects.filter(host=host)
        .annotate(holder_id=holder(HostCpu, "allocation__instance_id"))
        .annotate(holder_label=holder(HostCpu, "allocation__instance__label"))
        .annotate(account_id=holder(HostCpu, "allocation__instance__account_id"))
        .annotate(account_name=holder(HostCpu, "allocation__instance__account__name"))
        .order_by("cpu_id")
        .values_list(
            "numa_node_id", "cpu_id", "reserved", "holder_id", "holder_label", "account_id", "account_name"
        )
    )
    gpus = (
        GpuDevice.objects.filter(host=host)
        .select_related("model")
        .annotate(holder_id=holder(GpuDevice, "allocation__instance_id"))
        .annotate(holder_label=holder(GpuDevice, "allocation__instance__label"))
        .annotate(account_id=holder(GpuDevice, "allocation__instance__account_id"))
        .annotate(account_name=holder(GpuDevice, "allocation__instance__account__name"))
        .order_by("pci_address")
    )
    lines = {
        pk: TopologyNode(
            index=n.index,
            memory_mib=n.memory_mib,
            reserved_memory_mib=n.reserved_memory_mib,
            used_memory_mib=n.used_memory_mib,
            hugepages_1g_total=n.hugepages_1g_total,
            hugepages_1g_used=n.hugepages_1g_used,
            free_cores=n.free_cores,
            threads_per_core=n.threads_per_core,
        )
        for pk, n in nodes.items()
    }
    for node_id, cpu_id, reserved, holder_id, holder_label, account_id, account_name in cpus:
        line = lines[node_id]
        line.cpus.append(cpu_id)
        line.threads.append(
            TopologyCpu(cpu_id, reserved, holder_id, holder_label or "", account_id, account_name or "")
        )
        if reserved:
            line.reserved_cpus.append(cpu_id)
        if holder_id is not None:
            line.held_cpus.setdefault((holder_id, holder_label), []).append(cpu_id)
            line.holder_accounts[holder_id] = account_name or ""
    for gpu in gpus:
        line = lines.get(gpu.numa_node_id)
        if line is None:
            line = lines.setdefault(None, TopologyNode(index=None))
        line.gpus.append(
            TopologyGpu(
                gpu_id=gpu.pk,
                pci_address=gpu.pci_address,
                functions=gpu.functions,
                model=gpu.model.short_name,
                state=gpu.state,
                state_reason=gpu.state_reason,
                holder_id=gpu.holder_id,
                holder_label=gpu.holder_label or "",
                account_id=gpu.account_id,
                account_name=gpu.account_name or "",
            )
        )
    return list(lines.values())


# What a customer would call a card's state: held by an instance, or free, or out of sale and why.
class CustomerGpuState:
    HELD = "held"
    FREE = "free"

    @staticmethod
    def of(*, state: str, held: bool) -> str:
        if held:
            return CustomerGpuState.HELD
        return CustomerGpuState.FREE if state == GpuDevice.State.AVAILABLE else state


def _active_holding(column: str) -> Subquery:
    """A column of the card's active allocation row (reached through the reverse relation)."""
    relation = GpuDevice._meta.get_field("allocations")
    held = relation.related_model.objects.filter(
        **{relation.field.name: OuterRef("pk")}, released_at__isnull=True
    )
    return Subquery(held.values(column)[:1])


def _last_release() -> Subquery:
    relation = GpuDevice._meta.get_field("allocations")
    released = relation.related_model.objects.filter(
        **{relation.field.name: OuterRef("pk")}, released_at__isnull=False
    ).order_by("-released_at")
    return Subquery(released.values("released_at")[:1])


def _last_state_change() -> Subquery:
    """When a person or the system last changed the card's state by hand (its latest audit row)."""
    changes = AuditRecord.objects.filter(
        target_type=GpuDevice._meta.label_lower,
        target_id=Cast(OuterRef("pk"), CharField()),
    ).order_by("-created", "-id")
    return Subquery(changes.values("created")[:1])


def gpus_with_holders(queryset=None):
    """GPUs annotated with who holds them now and since when, in one query whatever the fleet size:
    holder_instance_id/_label, holder_account_id/_name, held_since (the allocation's start),
    released_at (the last release) and state_changed_at (the last audited change). `customer_state`
    and `since` (gpu_since) read these."""
    queryset = GpuDevice.objects.all() if queryset is None else queryset
    return queryset.annotate(
        holder_instance_id=_active_holding("allocation__instance_id"),
        holder_instance_label=_active_holding("allocation__instance__label"),
        holder_account_id=_active_holding("allocation__instance__account_id"),
        holder_account_name=_active_holding("allocation__instance__account__name"),
        held_since=_active_holding("allocation__created_at"),
        last_released_at=_last_release(),
        state_changed_at=_last_state_change(),
    )


def gpu_customer_state(gpu: GpuDevice) -> str:
    """held, free, cleaning, quarantined, faulty, reserved or removed, for a row of gpus_with_holders."""
    return CustomerGpuState.of(state=gpu.state, held=gpu.holder_instance_id is not None)


def gpu_since(gpu: GpuDevice):
    """Since when the card is in its customer state: the allocation's start when held, else the later
    of its last release and its last audited state change (None when neither ever happened)."""
    if gpu.holder_instance_id is not None:
        return gpu.held_since
    moments = [t for t in (gpu.last_released_at, gpu.state_changed_at) if t is not None]
    return max(moments) if moments else None


@dataclass(frozen=True)
class HolderLine:
    """One allocation that held a card: who, on which plan, from when to when (None: still holds it)."""

    allocation_id: int
    instance_id: int
    instance_label: str
    account_id: int
    account_name: str
    plan: str
    held_from: object
    held_until: object


def gpu_holder_history(*, gpu: GpuDevice, limit: int = 50) -> list[HolderLine]:
    """Who held the card, newest first, from the allocation rows (one query)."""
    relation = GpuDevice._meta.get_field("allocations")
    rows = (
        relation.related_model.objects.filter(**{relation.field.name: gpu})
        .order_by("-allocation__created_at", "-id")
        .values_list(
            "allocation_id",
            "allocation__instance_id",
            "allocation__instance__label",
            "allocation__instance__account_id",
            "allocation__instance__account__name",
            "allocation__instance_type_id",
            "allocation__created_at",
            "released_at",
        )[:limit]
    )
    return [HolderLine(*row) for row in rows]


def topology_accounts(nodes: Iterable[TopologyNode]) -> list[tuple[int, str]]:
    """The accounts holding anything in a topology, in the order they first appear: (id, name)."""
    seen: dict[int, str] = {}
    for node in nodes:
        for gpu in node.gpus:
            if gpu.account_id is not None:
                seen.setdefault(gpu.account_id, gpu.account_name)
        for cpu in node.threads:
            if cpu.account_id is not None:
                seen.setdefault(cpu.account_id, cpu.account_name)
    return list(seen.items())


# The dashboard's chart windows, and capacity_report --history's.
CAPACITY_WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass
class CapacityHistory:
    """One region and GPU model's samples in a window, oldest first, and the GPU plans they name."""

    region: str
    region_label: str
    gpu_model: str
    samples: list[CapacitySample]
    plans: list[str]


def capacity_history(
    *, since: datetime, until: datetime | None = None, region: Region | str | None = None
) -> list[CapacityHistory]:
    """The capacity samples recorded since `since`, per region and GPU model: one query."""
    samples = CapacitySample.objects.filter(recorded_at__gte=since).select_related("region", "gpu_model")
    if until is not None:
        samples = samples.filter(recorded_at__lte=until)
    if region is not None:
        samples = samples.filter(region=region)
    series: dict[tuple[str, int], CapacityHistory] = {}
    for sample in samples.order_by("region_id", "gpu_model__short_name", "recorded_at"):
        key = (sample.region_id, sample.gpu_model_id)
        if key not in series:
            series[key] = CapacityHistory(
                sample.region_id, sample.region.label, sample.gpu_model.short_name, [], []
            )
        history = series[key]
        history.samples.append(sample)
        history.plans.extend(plan for plan in sample.sellable if plan not in history.plans)
    for history in series.values():
        history.plans.sort(key=_plan_order)
    return list(series.values())


def _plan_order(plan_id: str) -> tuple:
    """g1-gpu-rtx6000-2 before g1-gpu-rtx6000-10: the trailing GPU count as a number."""
    head, _, tail = plan_id.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (plan_id, 0)
