"""Claiming and releasing what a guest holds: one transaction each, no libvirt call inside.

A claim reads candidate nodes through the capacity counters (an index, a short window in policy
order), locks one host at a time with SELECT ... FOR UPDATE SKIP LOCKED, re-checks on the locked rows,
writes the allocation rows and the counters, and bumps Host.generation. Each attempt runs in a
savepoint, so a host that turned out not to fit is unlocked again before the next one is tried: a
claim waits for a lock only while holding none, and two claims cannot deadlock on hosts.

Hosts that were locked by someone else are skipped first and waited for last, so a loser is told
"no capacity" only after every candidate was seen unlocked. The partial unique constraints on the
allocation rows stay the last line of defence.
"""

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from inventory.counters import active_allocation_exists, cores_of, numa_counters_recount, shared_iommu_groups
from inventory.fit import HostFree, NodeFree, Shape, Split, host_splits
from inventory.models import GpuDevice, Host, HostCpu, InstanceType, NumaNode, Region
from provisioning.exceptions import InvalidRequest, NoCapacity
from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance
from provisioning.placement import Policy, RequestLabels, best_fit, explain, first_fit, ranked, spread

__all__ = ["allocation_claim", "allocation_move", "allocation_release"]

# Candidate nodes read per round (both nodes of a host may appear). Locked hosts are skipped and the
# next window read, so concurrent claims spread over the fleet instead of queueing on one host.
CANDIDATE_WINDOW = 32

# The SQL order that agrees with each policy's first keys, so the window holds its best candidates.
# best_fit's order is the index numanode_gpu_candidates, read from the start with no sort.
_SINGLE_NODE_ORDER = {
    best_fit: ("free_gpus", "free_cores", "host_id"),
    first_fit: ("host_id", "index"),
    spread: ("-free_gpus", "-free_cores", "host_id"),
}
_MULTI_NODE_ORDER = {best_fit: ("total", "host_id"), first_fit: ("host_id",), spread: ("-total", "host_id")}


def allocation_claim(
    *, instance: Instance, plan: InstanceType, region: Region, policy: Policy = best_fit
) -> Allocation:
    """Give `instance` the GPUs, whole cores and memory of `plan` on one host of `region`, NUMA-local.

    Raises NoCapacity with the scarce resource named when nothing fits now.
    """
    with transaction.atomic():
        return _claim(instance=instance, plan=plan, region=region, policy=policy, wait_for_locked=True)


def allocation_release(*, allocation: Allocation) -> None:
    """Give back everything `allocation` holds. Its GPUs go to `cleaning` until they are reset.

    Releasing a released allocation does nothing.
    """
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=allocation.host_id)
        locked = Allocation.objects.select_for_update().get(pk=allocation.pk)
        if locked.released_at is not None:
            allocation.released_at = locked.released_at
            return
        gpu_ids = _release_rows(locked)
        GpuDevice.objects.filter(pk__in=gpu_ids, state=GpuDevice.State.AVAILABLE).update(
            state=GpuDevice.State.CLEANING, state_reason=f"released by instance {locked.instance_id}"
        )
        numa_counters_recount(host=host)
        Host.objects.filter(pk=host.pk).update(generation=F("generation") + 1)
        allocation.released_at = locked.released_at


def allocation_move(*, allocation: Allocation, plan: InstanceType) -> Allocation:
    """Cold resize: release `allocation` and claim `plan` for the same instance in one transaction.

    The same host is tried first, counting what the instance holds as free and keeping its GPUs
    where it can (kept GPUs skip cleaning); then the other hosts of the region. On NoCapacity nothing
    changes and the old allocation stands. Other hosts are only tried unlocked (skip locked, never
    wait), because this transaction already holds the old host's lock.
    """
    with transaction.atomic():
        old_host = Host.objects.select_for_update().get(pk=allocation.host_id)
        old = Allocation.objects.select_for_update().select_related("instance__region").get(pk=allocation.pk)
        if old.released_at is not None:
            raise InvalidRequest(f"allocation {old.pk} was released at {old.released_at:%Y-%m-%dT%H:%M:%S}.")
        instance = old.instance
        held = _release_rows(old)
        numa_counters_recount(host=old_host)
        shape = Shape.of(plan)
        new = _try_host(
            host_id=old_host.pk,
            instance=instance,
            plan=plan,
            region=instance.region,
            shape=shape,
            policy=best_fit,
            wait=True,
            prefer_gpus=held,
        )
        if not isinstance(new, Allocation):
            new = _claim(
                instance=instance,
                plan=plan,
                region=instance.region,
                policy=best_fit,
                wait_for_locked=False,
                exclude={old_host.pk},
            )
        kept = set(new.gpus.values_list("gpu_id", flat=True))
        gone = [gpu_id for gpu_id in held if gpu_id not in kept]
        if gone:
            GpuDevice.objects.filter(pk__in=gone, state=GpuDevice.State.AVAILABLE).update(
                state=GpuDevice.State.CLEANING, state_reason=f"released by instance {instance.pk} on resize"
            )
            numa_counters_recount(host=old_host)
        if new.host_id != old_host.pk:
            Host.objects.filter(pk=old_host.pk).update(generation=F("generation") + 1)
        allocation.released_at = old.released_at
        return new


def _release_rows(allocation: Allocation) -> list[int]:
    """Mark the allocation and its GPU and CPU rows released; returns the GPU ids it held."""
    now = timezone.now()
    gpu_ids = list(allocation.gpus.filter(released_at__isnull=True).values_list("gpu_id", flat=True))
    allocation.gpus.filter(released_at__isnull=True).update(released_at=now)
    allocation.cpus.filter(released_at__isnull=True).update(released_at=now)
    Allocation.objects.filter(pk=allocation.pk).update(released_at=now)
    allocation.released_at = now
    return gpu_ids


_LOCKED = "locked"
_NO_FIT = "no fit"


class _Rollback(Exception):
    """Leaves an attempt's savepoint, which also gives up the host lock it took."""


def _claim(
    *,
    instance: Instance,
    plan: InstanceType,
    region: Region,
    policy: Policy,
    wait_for_locked: bool,
    exclude: Collection[int] = (),
) -> Allocation:
    shape = Shape.of(plan)
    tried: set[int] = set(exclude)
    locked_out: list[int] = []  # best first; skipped while any unlocked candidate is left
    while True:
        candidates = _ranked_candidates(
            shape=shape, region=region, policy=policy, exclude=tried | set(locked_out)
        )
        for host, _split in candidates:
            outcome = _try_host(
                host_id=host.host_id,
                instance=instance,
                plan=plan,
                region=region,
                shape=shape,
                policy=policy,
                wait=False,
            )
            if isinstance(outcome, Allocation):
                return outcome
            if outcome == _LOCKED:
                locked_out.append(host.host_id)
            else:
                tried.add(host.host_id)
        if candidates:
            continue
        if not locked_out or not wait_for_locked:
            raise NoCapacity(_explain(shape=shape, plan=plan, region=region))
        # Every candidate left is locked by another claim: wait for the best one, holding no lock.
        host_id = locked_out.pop(0)
        outcome = _try_host(
            host_id=host_id,
            instance=instance,
            plan=plan,
            region=region,
            shape=shape,
            policy=policy,
            wait=True,
        )
        if isinstance(outcome, Allocation):
            return outcome
        tried.add(host_id)


def _eligible_nodes(*, shape: Shape, region: Region):
    nodes = NumaNode.objects.filter(
        host__region=region, host__kind=shape.host_kind, host__state=Host.State.ENABLED
    )
    if shape.gpus:
        return nodes.filter(gpu_model_id=shape.gpu_model_id, free_gpus__gt=0)
    return nodes.filter(gpu_model__isnull=True, free_cores__gt=0)


def _ranked_candidates(
    *, shape: Shape, region: Region, policy: Policy, exclude: Collection[int]
) -> list[tuple[HostFree, Split]]:
    """The hosts of one window read through the counters, best first under `policy`."""
    nodes = _eligible_nodes(shape=shape, region=region)
    if exclude:
        nodes = nodes.exclude(host_id__in=list(exclude))
    single = (
        nodes.filter(free_gpus__gte=shape.gpus)
        .alias(
            free_vcpus=F("free_cores") * F("threads_per_core"),
            free_memory=F("memory_mib") - F("reserved_memory_mib") - F("used_memory_mib"),
        )
        .filter(free_vcpus__gte=shape.vcpus, free_memory__gte=shape.memory_mib)
    )
    order = _SINGLE_NODE_ORDER.get(policy, ("host_id", "index"))
    if not shape.gpus:
        order = tuple(o for o in order if "free_gpus" not in o)
    window = single.order_by(*order).values("host_id")[:CANDIDATE_WINDOW]
    hosts = _snapshot(host_ids=window, kind=shape.host_kind)
    if not hosts:
        total = Sum("free_gpus") if shape.gpus else Sum(F("free_cores") * F("threads_per_core"))
        window = (
            nodes.values("host_id")
            .annotate(total=total)
            .filter(total__gte=shape.gpus or shape.vcpus)
            .order_by(*_MULTI_NODE_ORDER.get(policy, ("host_id",)))
            .values("host_id")[:CANDIDATE_WINDOW]
        )
        hosts = _snapshot(host_ids=window, kind=shape.host_kind)
    return ranked(shape, hosts, policy)


def _snapshot(*, host_ids, kind: str) -> list[HostFree]:
    """Every node of the given hosts (a list, or a subquery of host ids) as HostFree snapshots."""
    rows = (
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
    return hosts_from_rows(rows, kind=kind)


def hosts_from_rows(rows: Iterable[tuple], *, kind: str) -> list[HostFree]:
    """HostFree snapshots from node rows in the column order of `_snapshot`, grouped by host."""
    hosts: dict[int, tuple[str, list[NodeFree]]] = {}
    for (
        host_id,
        hostname,
        node_id,
        index,
        gpus,
        cores,
        tpc,
        memory,
        reserved,
        used,
        hp_total,
        hp_used,
        model,
    ) in rows:
        node = NodeFree(
            node_id=node_id,
            index=index,
            free_gpus=gpus,
            free_cores=cores,
            threads_per_core=tpc,
            free_memory_mib=memory - reserved - used,
            free_hugepages_1g=hp_total - hp_used,
            gpu_model_id=model,
        )
        hosts.setdefault(host_id, (hostname, []))[1].append(node)
    return [HostFree(host_id, name, tuple(nodes), kind) for host_id, (name, nodes) in hosts.items()]


@dataclass
class _LiveNode:
    """A node's free resources read from the rows under the host lock: concrete ids, not counts."""

    row: NumaNode
    gpus: list[tuple[str, int]]  # (pci_address, id), placeable and free
    cores: list[tuple[int, ...]]  # cpu ids of free whole cores, sibling order
    cpu_ids: dict[int, int]  # cpu_id -> HostCpu.id
    allocated_gpus: int
    threads_per_core: int


def _try_host(
    *,
    host_id: int,
    instance: Instance,
    plan: InstanceType,
    region: Region,
    shape: Shape,
    policy: Policy,
    wait: bool,
    prefer_gpus: Collection[int] = (),
) -> Allocation | str:
    """One attempt on one host inside a savepoint: an Allocation, _LOCKED or _NO_FIT."""
    try:
        with transaction.atomic():
            # Locks the host row only (FOR UPDATE OF host); a locked host yields no rows.
            nodes = list(
                NumaNode.objects.select_related("host")
                .select_for_update(skip_locked=not wait, of=("host",))
                .filter(host_id=host_id, host__region=region, host__kind=shape.host_kind)
                .filter(host__state=Host.State.ENABLED)
                .order_by("index")
            )
            if not nodes:
                return _LOCKED if not wait else _NO_FIT
            host = nodes[0].host
            live = _live_nodes(host, nodes)
            free = HostFree(host.pk, host.hostname, tuple(_node_free(n) for n in live.values()), host.kind)
            splits = host_splits(free, shape)
            if not splits:
                raise _Rollback(_drifted(live))
            preferred = set(prefer_gpus)

            def key(split: Split) -> tuple:
                keep = sum(
                    min(share.gpus, sum(1 for _, gid in live[share.node_id].gpus if gid in preferred))
                    for share in split.shares
                )
                return (split.node_count, -keep, policy(free, split))

            split = min(splits, key=key)
            return _write(host=host, instance=instance, plan=plan, split=split, live=live, prefer=preferred)
    except _Rollback as refused:
        if refused.args[0]:
            # The counters offered a host the rows refuse: repair them, unless someone holds it (then
            # they are writing its counters anyway). Never wait here: this claim may hold a lock.
            host = Host.objects.filter(pk=host_id).first()
            if host is not None:
                numa_counters_recount(host=host, skip_locked=True)
        return _NO_FIT


def _drifted(live: dict[int, "_LiveNode"]) -> bool:
    return any(
        (node.row.free_gpus, node.row.free_cores, node.row.allocated_gpus)
        != (len(node.gpus), len(node.cores), node.allocated_gpus)
        for node in live.values()
    )


def _live_nodes(host: Host, rows: list[NumaNode]) -> dict[int, _LiveNode]:
    nodes = {node.pk: node for node in rows}
    gpus = list(
        GpuDevice.objects.filter(host=host)
        .annotate(active=active_allocation_exists(GpuDevice))
        .values_list(
            "id",
            "numa_node_id",
            "model_id",
            "state",
            "iommu_group",
            "foreign_functions",
            "active",
            "pci_address",
        )
    )
    cpus = list(
        HostCpu.objects.filter(host=host)
        .annotate(active=active_allocation_exists(HostCpu))
        .values_list("id", "numa_node_id", "cpu_id", "siblings", "reserved", "active")
    )
    shared = shared_iommu_groups((host.pk, g[4]) for g in gpus)
    live = {}
    for node_id, node in nodes.items():
        free_gpus = sorted(
            (pci, gpu_id)
            for gpu_id, numa_node_id, model_id, state, group, foreign, active, pci in gpus
            if numa_node_id == node_id
            and state == GpuDevice.State.AVAILABLE
            and not active
            and model_id == node.gpu_model_id
            and not foreign
            and (host.pk, group) not in shared
        )
        node_cpus = [c for c in cpus if c[1] == node_id]
        busy: dict[tuple[int, ...], bool] = {}
        for _, _, cpu_id, siblings, reserved, active in node_cpus:
            core = tuple(sorted(siblings)) or (cpu_id,)
            busy[core] = busy.get(core, False) or reserved or active
        free_cores, threads = cores_of((c[2], c[3], c[4], c[5]) for c in node_cpus)
        live[node_id] = _LiveNode(
            row=node,
            gpus=free_gpus,
            cores=sorted(core for core, is_busy in busy.items() if not is_busy and len(core) == threads),
            cpu_ids={c[2]: c[0] for c in node_cpus},
            allocated_gpus=sum(1 for g in gpus if g[1] == node_id and g[6]),
            threads_per_core=threads,
        )
    return live


def _node_free(live: _LiveNode) -> NodeFree:
    row = live.row
    return NodeFree(
        node_id=row.pk,
        index=row.index,
        free_gpus=len(live.gpus),
        free_cores=len(live.cores),
        threads_per_core=live.threads_per_core,
        free_memory_mib=row.free_memory_mib,
        free_hugepages_1g=row.hugepages_1g_total - row.hugepages_1g_used,
        gpu_model_id=row.gpu_model_id,
    )


def _write(
    *,
    host: Host,
    instance: Instance,
    plan: InstanceType,
    split: Split,
    live: dict[int, _LiveNode],
    prefer: set[int],
) -> Allocation:
    allocation = Allocation.objects.create(instance=instance, host=host, instance_type=plan)
    gpu_rows, cpu_rows, memory_rows = [], [], []
    vcpu = 0
    shares = {share.node_id: share for share in split.shares}
    for share in split.shares:
        node = live[share.node_id]
        gpus = sorted(node.gpus, key=lambda g: (g[1] not in prefer, g[0]))[: share.gpus]
        gpu_rows += [AllocatedGpu(allocation=allocation, gpu_id=gpu_id) for _, gpu_id in gpus]
        threads = [cpu_id for core in node.cores[: share.cores] for cpu_id in core][: share.vcpus]
        for cpu_id in threads:
            cpu_rows.append(AllocatedCpu(allocation=allocation, cpu_id=node.cpu_ids[cpu_id], vcpu=vcpu))
            vcpu += 1
        memory_rows.append(
            AllocatedMemory(
                allocation=allocation,
                numa_node_id=share.node_id,
                memory_mib=share.memory_mib,
                hugepages_1g=share.hugepages_1g,
            )
        )
    AllocatedGpu.objects.bulk_create(gpu_rows)
    AllocatedCpu.objects.bulk_create(cpu_rows)
    AllocatedMemory.objects.bulk_create(memory_rows)
    for node_id, node in live.items():
        share = shares.get(node_id)
        gpus, cores = (share.gpus, share.cores) if share else (0, 0)
        counters = {
            "free_gpus": len(node.gpus) - gpus,
            "allocated_gpus": node.allocated_gpus + gpus,
            "free_cores": len(node.cores) - cores,
            "threads_per_core": node.threads_per_core,
        }
        if share:
            counters["used_memory_mib"] = F("used_memory_mib") + share.memory_mib
            counters["hugepages_1g_used"] = F("hugepages_1g_used") + share.hugepages_1g
        elif all(getattr(node.row, field) == value for field, value in counters.items()):
            continue
        NumaNode.objects.filter(pk=node_id).update(**counters)
    Host.objects.filter(pk=host.pk).update(generation=F("generation") + 1)
    instance.host = host
    instance.save(update_fields=["host", "updated"])
    return allocation


def _explain(*, shape: Shape, plan: InstanceType, region: Region) -> str:
    nodes = _eligible_nodes(shape=shape, region=region)
    host_ids = set(nodes.values_list("host_id", flat=True).distinct())
    in_service = Host.objects.filter(region=region, kind=shape.host_kind, state=Host.State.ENABLED)
    if shape.gpus:
        in_service = in_service.filter(numa_nodes__gpu_model_id=shape.gpu_model_id)
    labels = RequestLabels(
        region=region.id, plan=plan.id, gpu_model=plan.gpu_model.short_name if plan.gpu_model_id else ""
    )
    return explain(
        shape,
        _snapshot(host_ids=host_ids, kind=shape.host_kind) if host_ids else [],
        labels,
        hosts_in_service=in_service.distinct().count(),
    )
