"""The per-NUMA-node capacity counters: the placeability rule, the recount that repairs them, and the
one service that changes a GPU's state (which moves the counters).

Claims and releases (provisioning.claims) adjust the counters incrementally under the host lock. Any
other writer of GPU state, CPU reservation or NUMA topology calls `numa_counters_recount` for the
host afterwards, inside the same transaction. Every one of them bumps `Host.generation`: a claim
reads a host's rows in the statement that locks it and trusts that read only when the generation it
locked is the one it read (provisioning.claims.rows). A claim that finds a counter higher than the rows say
repairs it on the spot, so drift costs at most a wasted candidate, never a double allocation: the
rows and their unique constraints decide, the counters only find candidates fast.

Allocation rows are read through their reverse relations (`allocations`) rather than imported, so
inventory keeps pointing away from provisioning.
"""

from collections import Counter
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Sum

from inventory.models import GpuDevice, Host, HostCpu, NumaNode

COUNTER_FIELDS = (
    "gpu_model",
    "free_gpus",
    "allocated_gpus",
    "free_cores",
    "threads_per_core",
    "used_memory_mib",
    "hugepages_1g_used",
)


def active_allocation_exists(model: type[GpuDevice] | type[HostCpu]) -> Exists:
    """An Exists() that is true when the GPU or CPU row is in an active allocation."""
    relation = model._meta.get_field("allocations")
    return Exists(
        relation.related_model.objects.filter(
            **{relation.field.name: OuterRef("pk")}, released_at__isnull=True
        )
    )


def held_by_active_allocations(model: type[GpuDevice] | type[HostCpu], host: Host) -> set[int]:
    """Ids of the host's GPUs (or CPUs) in an active allocation, found through the host's allocations:
    a cost that does not grow with the fleet, unlike an EXISTS per row, which PostgreSQL may run by
    hashing every active row of every host."""
    relation = model._meta.get_field("allocations")
    return set(
        relation.related_model.objects.filter(
            allocation__host=host, allocation__released_at__isnull=True, released_at__isnull=True
        ).values_list(relation.field.attname, flat=True)
    )


def unplaceable_reason(
    *,
    numa_node_id: int | None,
    model_id: int,
    node_model_id: int | None,
    foreign_functions: Iterable[str],
    shares_iommu_group: bool,
) -> str | None:
    """Why a card cannot be given to a guest whatever its state, or None when it can.

    A card without NUMA affinity is never placed: the product's promise is a NUMA-local VM and such
    a card cannot keep it (fix the firmware setting or teach discovery the node, then recount).
    """
    if numa_node_id is None:
        return "no NUMA node"
    if shares_iommu_group or list(foreign_functions):
        return "IOMMU group shared with another device"
    if node_model_id != model_id:
        return "NUMA node mixes GPU models"
    return None


def node_gpu_model(model_ids: Iterable[int]) -> int | None:
    """The model a node sells: the one model of its cards, or None when it has none or mixes them."""
    distinct = set(model_ids)
    return distinct.pop() if len(distinct) == 1 else None


def shared_iommu_groups(gpus: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """(host_id, iommu_group) pairs held by more than one card: each card there has a foreign neighbour."""
    counts = Counter(gpus)
    return {key for key, n in counts.items() if n > 1}


def cores_of(cpus: Iterable[tuple[int, list[int], bool, bool]]) -> tuple[int, int]:
    """(free whole cores, threads per core) from (cpu_id, siblings, reserved, allocated) of one node."""
    busy: dict[tuple[int, ...], bool] = {}
    for cpu_id, siblings, reserved, allocated in cpus:
        core = tuple(sorted(siblings)) or (cpu_id,)
        busy[core] = busy.get(core, False) or reserved or allocated
    if not busy:
        return 0, 1
    threads = Counter(len(core) for core in busy).most_common(1)[0][0]
    # A core whose sibling list disagrees with the node's thread count is not offered: pinning it
    # would break the whole-core rule.
    free = sum(1 for core, is_busy in busy.items() if not is_busy and len(core) == threads)
    return free, max(threads, 1)


def numa_counters_recount(*, host: Host, skip_locked: bool = False) -> list[str]:
    """Rebuild the counters of every NUMA node of `host` from its rows; returns what changed, and
    bumps the host's generation when anything did.

    Call it inside the transaction that changed the host's GPUs, CPUs or nodes. With `skip_locked`,
    a host locked by another transaction is left alone.
    """
    with transaction.atomic():
        if Host.objects.select_for_update(skip_locked=skip_locked).filter(pk=host.pk).first() is None:
            return []
        nodes = list(NumaNode.objects.filter(host=host).order_by("index"))
        busy_gpus, busy_cpus = (
            held_by_active_allocations(GpuDevice, host),
            held_by_active_allocations(HostCpu, host),
        )
        gpus = [
            (*row[1:], row[0] in busy_gpus)
            for row in GpuDevice.objects.filter(host=host).values_list(
                "id", "numa_node_id", "model_id", "state", "iommu_group", "foreign_functions"
            )
        ]
        cpus = [
            (*row[1:], row[0] in busy_cpus)
            for row in HostCpu.objects.filter(host=host).values_list(
                "id", "numa_node_id", "cpu_id", "siblings", "reserved"
            )
        ]
        memory = {
            row["numa_node_id"]: row
            for row in NumaNode.allocations.rel.related_model.objects.filter(
                numa_node__host=host, allocation__released_at__isnull=True
            )
            .values("numa_node_id")
            .annotate(memory=Sum("memory_mib"), hugepages=Sum("hugepages_1g"))
        }
        shared = shared_iommu_groups((host.pk, g[3]) for g in gpus)
        changes = []
        for node in nodes:
            node_gpus = [g for g in gpus if g[0] == node.pk]
            wanted = {
                "gpu_model": node_gpu_model(g[1] for g in node_gpus if g[2] != GpuDevice.State.REMOVED),
                "allocated_gpus": sum(1 for g in node_gpus if g[5]),
            }
            wanted["free_gpus"] = sum(
                1
                for numa_node_id, model_id, state, group, foreign, active in node_gpus
                if state == GpuDevice.State.AVAILABLE
                and not active
                and unplaceable_reason(
                    numa_node_id=numa_node_id,
                    model_id=model_id,
                    node_model_id=wanted["gpu_model"],
                    foreign_functions=foreign,
                    shares_iommu_group=(host.pk, group) in shared,
                )
                is None
            )
            wanted["free_cores"], wanted["threads_per_core"] = cores_of(
                (cpu_id, siblings, reserved, active)
                for numa_node_id, cpu_id, siblings, reserved, active in cpus
                if numa_node_id == node.pk
            )
            used = memory.get(node.pk, {})
            wanted["used_memory_mib"] = used.get("memory") or 0
            wanted["hugepages_1g_used"] = used.get("hugepages") or 0
            differs = {f: v for f, v in wanted.items() if _current(node, f) != v}
            if differs:
                detail = ", ".join(f"{f} {_current(node, f)} -> {v}" for f, v in differs.items())
                changes.append(f"{host.hostname} node {node.index}: {detail}")
                NumaNode.objects.filter(pk=node.pk).update(
                    **{("gpu_model_id" if f == "gpu_model" else f): v for f, v in differs.items()}
                )
        if changes:
            Host.objects.filter(pk=host.pk).update(generation=F("generation") + 1)
    return changes


def _current(node: NumaNode, field: str):
    return node.gpu_model_id if field == "gpu_model" else getattr(node, field)


def gpu_set_state(*, gpu: GpuDevice, state: str, reason: str = "") -> GpuDevice:
    """Move a card to `state` (e.g. cleaning -> available after a reset) and keep the counters exact."""
    with transaction.atomic():
        Host.objects.select_for_update().filter(pk=gpu.host_id).first()
        gpu = GpuDevice.objects.select_related("host").get(pk=gpu.pk)
        changed = gpu.state != state
        gpu.state, gpu.state_reason = state, reason
        gpu.full_clean(exclude=["host", "numa_node", "model"])
        gpu.save(update_fields=["state", "state_reason"])
        if changed:  # whether or not the counters move: a claim reads the card's state itself
            Host.objects.filter(pk=gpu.host_id).update(generation=F("generation") + 1)
        numa_counters_recount(host=gpu.host)
    return gpu
