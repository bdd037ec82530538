"""Claiming and releasing what a guest holds: one transaction each, no libvirt call inside.

A claim reads a window of candidate nodes through the capacity counters (an index, in policy
order), ranks their hosts with the policy, and in a savepoint locks the first of them no other claim
holds and that still fits by its counters (SELECT ... FOR UPDATE SKIP LOCKED ... LIMIT 1). It
re-checks the fit on the host's rows as of the lock (rows.lock_first_host tells how it knows), writes
the allocation rows and the counters, and bumps Host.generation. A host that turned out not to fit
is unlocked again by rolling the savepoint back, so a claim waits for a lock only while holding none,
and two claims cannot deadlock on hosts.

Hosts other claims hold are passed over first and waited for last, so a loser is told "no capacity"
only after every candidate was seen unlocked. The partial unique constraints on the allocation rows
stay the last line of defence. docs/placement.md tells the whole protocol.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from inventory.counters import cores_of, numa_counters_recount, shared_iommu_groups
from inventory.fit import HostFree, NodeFree, Shape, Split, host_splits
from inventory.models import GpuDevice, Host, InstanceType, Region
from inventory.selectors import host_snapshots, selling_nodes
from provisioning.claims import rows
from provisioning.exceptions import InvalidRequest, NoCapacity
from provisioning.models import Allocation, Instance
from provisioning.placement import Policy, RequestLabels, best_fit, explain, first_fit, ranked, spread

__all__ = [
    "allocation_claim",
    "allocation_move",
    "allocation_move_abandon",
    "allocation_move_finish",
    "allocation_release",
    "capacity_explanation",
]

# Candidate nodes read per round (both nodes of a host may appear). Locked hosts are skipped and the
# next window read, so concurrent claims spread over the fleet instead of queueing on one host.
CANDIDATE_WINDOW = 24

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


def allocation_move(
    *, allocation: Allocation, plan: InstanceType, same_host_only: bool = False
) -> Allocation:
    """Cold resize: claim `plan` for the allocation's instance, on its host if it fits there.

    The same host is tried first, counting what the instance holds as free and keeping its GPUs
    where it can (kept GPUs skip cleaning): the old allocation is released and the new one claimed in
    this one transaction. When the same host cannot take the plan, the other hosts of the region are
    tried and the old allocation is kept, marked `move_source`, with the instance still pointing at
    its old host: the disk has to be copied first, and a failed copy goes back to the old allocation
    as it was (allocation_move_abandon); a verified one releases it (allocation_move_finish).
    On NoCapacity nothing changes and the old allocation stands. Other hosts are only tried unlocked
    (skip locked, never wait), because this transaction already holds the old host's lock.
    """
    with transaction.atomic():
        old_host = Host.objects.select_for_update().get(pk=allocation.host_id)
        old = Allocation.objects.select_for_update().select_related("instance__region").get(pk=allocation.pk)
        if old.released_at is not None:
            raise InvalidRequest(f"allocation {old.pk} was released at {old.released_at:%Y-%m-%dT%H:%M:%S}.")
        instance = old.instance
        shape = Shape.of(plan)
        in_place = transaction.savepoint()
        held = _release_rows(old)
        numa_counters_recount(host=old_host)
        new, _ = _try_host(
            host_ids=[old_host.pk],
            instance=instance,
            plan=plan,
            region=instance.region,
            shape=shape,
            policy=best_fit,
            wait=True,
            prefer_gpus=held,
        )
        if isinstance(new, Allocation):
            transaction.savepoint_commit(in_place)
            kept = set(new.gpus.values_list("gpu_id", flat=True))
            gone = [gpu_id for gpu_id in held if gpu_id not in kept]
            if gone:
                GpuDevice.objects.filter(pk__in=gone, state=GpuDevice.State.AVAILABLE).update(
                    state=GpuDevice.State.CLEANING,
                    state_reason=f"released by instance {instance.pk} on resize",
                )
                numa_counters_recount(host=old_host)
            allocation.released_at = old.released_at
            return new
        transaction.savepoint_rollback(in_place)  # the old allocation holds everything again
        old.released_at = None
        if same_host_only:
            raise NoCapacity(_explain(shape=shape, plan=plan, region=instance.region))
        Allocation.objects.filter(pk=old.pk).update(move_source=True)
        new = _claim(
            instance=instance,
            plan=plan,
            region=instance.region,
            policy=best_fit,
            wait_for_locked=False,
            exclude={old_host.pk},
        )
        # Until its disk is copied the instance lives where it was.
        Instance.objects.filter(pk=instance.pk).update(host_id=old_host.pk)
        allocation.move_source = True
        return new


def allocation_move_finish(*, source: Allocation, target: Allocation) -> list[int]:
    """A move across hosts is done (disk copied and verified, domain defined on the target): release
    the source allocation and point the instance at the target's host. Returns the GPUs released
    (now `cleaning`). Finishing a finished move does nothing."""
    with transaction.atomic():
        _lock_hosts(source.host_id, target.host_id)
        locked = Allocation.objects.select_for_update().get(pk=source.pk)
        gpu_ids = []
        if locked.released_at is None:
            gpu_ids = list(locked.gpus.values_list("gpu_id", flat=True))
            allocation_release(allocation=locked)
            Allocation.objects.filter(pk=locked.pk).update(move_source=False)
        Instance.objects.filter(pk=target.instance_id).update(host_id=target.host_id, updated=timezone.now())
        return gpu_ids


def allocation_move_abandon(*, source: Allocation, target: Allocation) -> list[int]:
    """A move across hosts failed: release the target allocation and make the source the instance's
    allocation again, on its host and plan, as it was. Returns the target's GPUs (now `cleaning`)."""
    with transaction.atomic():
        _lock_hosts(source.host_id, target.host_id)
        locked = Allocation.objects.select_for_update().get(pk=target.pk)
        gpu_ids = []
        if locked.released_at is None:
            gpu_ids = list(locked.gpus.values_list("gpu_id", flat=True))
            allocation_release(allocation=locked)
        Allocation.objects.filter(pk=source.pk, released_at__isnull=True).update(move_source=False)
        Instance.objects.filter(pk=source.instance_id).update(
            host_id=source.host_id, instance_type_id=source.instance_type_id, updated=timezone.now()
        )
        return gpu_ids


def _lock_hosts(*host_ids: int) -> None:
    """Lock hosts in id order, so two transactions locking the same pair cannot deadlock."""
    list(Host.objects.select_for_update().filter(pk__in=set(host_ids)).order_by("pk").values_list("pk"))


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
_DRIFTED = "no fit, counters wrong"


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
    drifted: set[int] = set()
    attempt = dict(instance=instance, plan=plan, region=region, shape=shape, policy=policy)
    while True:
        candidates, alone = _ranked_candidates(
            shape=shape, region=region, policy=policy, exclude=tried | set(locked_out)
        )
        waiting = [host.host_id for host, _split in candidates]
        while waiting:
            outcome, host_id = _try_host(
                host_ids=waiting, wait=False, fits_alone=shape if alone else None, **attempt
            )
            if isinstance(outcome, Allocation):
                _repair(drifted)
                return outcome
            if host_id is None:
                # Every host left in the window is locked by another claim or, read again, no longer
                # has a node that fits alone: each gets a full attempt once no other candidate is left.
                locked_out += waiting
                break
            position = waiting.index(host_id)
            locked_out += waiting[:position]
            waiting = waiting[position + 1 :]
            tried.add(host_id)
            if outcome == _DRIFTED:
                drifted.add(host_id)
        if candidates:
            continue
        if not locked_out or not wait_for_locked:
            rows.restore_planning()
            raise NoCapacity(_explain(shape=shape, plan=plan, region=region))
        # Every candidate left is locked by another claim: wait for the best one, holding no lock.
        host_id = locked_out.pop(0)
        outcome, _ = _try_host(host_ids=[host_id], wait=True, **attempt)
        if isinstance(outcome, Allocation):
            _repair(drifted)
            return outcome
        tried.add(host_id)
        if outcome == _DRIFTED:
            drifted.add(host_id)


def _ranked_candidates(
    *, shape: Shape, region: Region, policy: Policy, exclude: Collection[int]
) -> tuple[list[tuple[HostFree, Split]], bool]:
    """The hosts of one window read through the counters, best first under `policy`, and whether
    they were chosen for having a node that fits the shape alone."""
    order = _SINGLE_NODE_ORDER.get(policy, ("host_id", "index"))
    if not shape.gpus:
        order = tuple(o for o in order if "free_gpus" not in o)
    hosts = rows.single_node_candidates(
        shape=shape, region_id=region.pk, order=order, exclude=exclude, window=CANDIDATE_WINDOW
    )
    if not hosts:
        # No node can take the whole shape: hosts whose nodes together have enough (rare, ORM).
        nodes = selling_nodes(shape=shape, region=region)
        if exclude:
            nodes = nodes.exclude(host_id__in=list(exclude))
        total = Sum("free_gpus") if shape.gpus else Sum(F("free_cores") * F("threads_per_core"))
        window = (
            nodes.values("host_id")
            .annotate(total=total)
            .filter(total__gte=shape.gpus or shape.vcpus)
            .order_by(*_MULTI_NODE_ORDER.get(policy, ("host_id",)))
            .values("host_id")[:CANDIDATE_WINDOW]
        )
        return ranked(shape, host_snapshots(host_ids=window, kind=shape.host_kind), policy), False
    return ranked(shape, hosts, policy), True


@dataclass
class _LiveNode:
    """A node's free resources read from the rows under the host lock: concrete ids, not counts."""

    row: rows.LockedNode
    gpus: list[tuple[str, int]]  # (pci_address, id), placeable and free
    cores: list[tuple[int, ...]]  # cpu ids of free whole cores, sibling order
    cpu_ids: dict[int, int]  # cpu_id -> HostCpu.id
    allocated_gpus: int
    threads_per_core: int

    def free(self) -> NodeFree:
        row = self.row
        return NodeFree(
            node_id=row.node_id,
            index=row.index,
            free_gpus=len(self.gpus),
            free_cores=len(self.cores),
            threads_per_core=self.threads_per_core,
            free_memory_mib=row.free_memory_mib,
            free_hugepages_1g=row.free_hugepages_1g,
            gpu_model_id=row.gpu_model_id,
        )

    @property
    def drifted(self) -> bool:
        return (self.row.free_gpus, self.row.free_cores, self.row.allocated_gpus) != (
            len(self.gpus),
            len(self.cores),
            self.allocated_gpus,
        )


def _try_host(
    *,
    host_ids: Sequence[int],
    instance: Instance,
    plan: InstanceType,
    region: Region,
    shape: Shape,
    policy: Policy,
    wait: bool,
    fits_alone: Shape | None = None,
    prefer_gpus: Collection[int] = (),
) -> tuple[Allocation | str, int | None]:
    """One attempt on the first host of `host_ids` this claim can lock: the outcome (an Allocation,
    _NO_FIT or _DRIFTED) and that host, or (_LOCKED, None) when it locked none. A host that does not
    fit is unlocked again before this returns."""
    locked = rows.lock_first_host(
        host_ids=host_ids, region_id=region.pk, kind=shape.host_kind, wait=wait, fits_alone=fits_alone
    )
    if locked is None:
        return _LOCKED, None
    host_id, hostname, held = locked
    live = _live_nodes(host_id, held or rows.host_rows(host_id=host_id))
    free = HostFree(host_id, hostname, tuple(n.free() for n in live.values()), shape.host_kind)
    splits = host_splits(free, shape)
    if not splits:
        rows.abandon_attempt()
        return (_DRIFTED if any(n.drifted for n in live.values()) else _NO_FIT), host_id
    preferred = set(prefer_gpus)

    def key(split: Split) -> tuple:
        keep = sum(
            min(share.gpus, sum(1 for _, gid in live[share.node_id].gpus if gid in preferred))
            for share in split.shares
        )
        return (split.node_count, -keep, policy(free, split))

    split = min(splits, key=key)
    allocation = _write(
        host_id=host_id, instance=instance, plan=plan, split=split, live=live, prefer=preferred
    )
    return allocation, host_id


def _repair(host_ids: Collection[int]) -> None:
    """Bring counters that offered hosts their rows refuse back to the rows. Called once the claim
    has its host, because the repair keeps a host lock to the end of the transaction and a claim
    must never wait for a lock while holding one. Hosts someone else holds are left to them."""
    if not host_ids:
        return
    for host in Host.objects.filter(pk__in=list(host_ids)):
        numa_counters_recount(host=host, skip_locked=True)


def _live_nodes(host_id: int, held: rows.HostRows) -> dict[int, _LiveNode]:
    nodes, gpus, cpus, busy_gpus, busy_cpus = held.nodes, held.gpus, held.cpus, held.busy_gpus, held.busy_cpus
    model_of = {node.node_id: node.gpu_model_id for node in nodes}
    shared = shared_iommu_groups((host_id, g[4]) for g in gpus)
    free_gpus: dict[int, list[tuple[str, int]]] = {node.node_id: [] for node in nodes}
    allocated: dict[int, int] = dict.fromkeys(free_gpus, 0)
    for gpu_id, node_id, model_id, state, group, foreign, pci in gpus:
        if gpu_id in busy_gpus:
            if node_id in allocated:
                allocated[node_id] += 1
        elif (
            node_id in free_gpus
            and state == GpuDevice.State.AVAILABLE
            and model_id == model_of[node_id]
            and not foreign
            and (host_id, group) not in shared
        ):
            free_gpus[node_id].append((pci, gpu_id))
    by_node: dict[int, list[tuple]] = {node.node_id: [] for node in nodes}
    for cpu in cpus:
        if cpu[1] in by_node:
            by_node[cpu[1]].append(cpu)
    live = {}
    for node in nodes:
        node_cpus = by_node[node.node_id]
        busy: dict[tuple[int, ...], bool] = {}
        for row_id, _, cpu_id, siblings, reserved in node_cpus:
            core = tuple(sorted(siblings)) or (cpu_id,)
            busy[core] = busy.get(core, False) or reserved or row_id in busy_cpus
        _, threads = cores_of((c[2], c[3], c[4], c[0] in busy_cpus) for c in node_cpus)
        live[node.node_id] = _LiveNode(
            row=node,
            gpus=sorted(free_gpus[node.node_id]),
            cores=sorted(core for core, is_busy in busy.items() if not is_busy and len(core) == threads),
            cpu_ids={c[2]: c[0] for c in node_cpus},
            allocated_gpus=allocated[node.node_id],
            threads_per_core=threads,
        )
    return live


def _write(
    *,
    host_id: int,
    instance: Instance,
    plan: InstanceType,
    split: Split,
    live: dict[int, _LiveNode],
    prefer: set[int],
) -> Allocation:
    gpu_ids, cpus, memory = [], [], []
    vcpu = 0
    shares = {share.node_id: share for share in split.shares}
    for share in split.shares:
        node = live[share.node_id]
        gpus = sorted(node.gpus, key=lambda g: (g[1] not in prefer, g[0]))[: share.gpus]
        gpu_ids += [gpu_id for _, gpu_id in gpus]
        threads = [cpu_id for core in node.cores[: share.cores] for cpu_id in core][: share.vcpus]
        for cpu_id in threads:
            cpus.append((node.cpu_ids[cpu_id], vcpu))
            vcpu += 1
        memory.append((share.node_id, share.memory_mib, share.hugepages_1g))
    counters = []
    for node_id, node in live.items():
        share = shares.get(node_id)
        if share is None and not node.drifted:
            continue
        # A node the claim takes nothing from is written only to bring drifted counters back.
        gpus, cores, mib, pages = (
            (share.gpus, share.cores, share.memory_mib, share.hugepages_1g) if share else (0,) * 4
        )
        counters.append(
            rows.NodeCounters(
                node_id=node_id,
                free_gpus=len(node.gpus) - gpus,
                allocated_gpus=node.allocated_gpus + gpus,
                free_cores=len(node.cores) - cores,
                threads_per_core=node.threads_per_core,
                memory_mib=mib,
                hugepages_1g=pages,
            )
        )
    return rows.write_allocation(
        instance=instance,
        host_id=host_id,
        plan_id=plan.pk,
        gpu_ids=gpu_ids,
        cpus=cpus,
        memory=memory,
        counters=counters,
    )


def capacity_explanation(*, plan: InstanceType, region: Region) -> str:
    """What a claim of `plan` in `region` would answer now if nothing fits (Linode's sentence, then why)."""
    return _explain(shape=Shape.of(plan), plan=plan, region=region)


def _explain(*, shape: Shape, plan: InstanceType, region: Region) -> str:
    nodes = selling_nodes(shape=shape, region=region)
    host_ids = set(nodes.values_list("host_id", flat=True).distinct())
    in_service = Host.objects.filter(region=region, kind=shape.host_kind, state=Host.State.ENABLED)
    if shape.gpus:
        in_service = in_service.filter(numa_nodes__gpu_model_id=shape.gpu_model_id)
    labels = RequestLabels(
        region=region.id, plan=plan.id, gpu_model=plan.gpu_model.short_name if plan.gpu_model_id else ""
    )
    return explain(
        shape,
        host_snapshots(host_ids=host_ids, kind=shape.host_kind) if host_ids else [],
        labels,
        hosts_in_service=in_service.distinct().count(),
    )
