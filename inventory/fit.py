"""What fits on one host's NUMA nodes: the NUMA rule of DESIGN.md section 3 as plain arithmetic.

No Django and no I/O: capacity selectors, claims, the packing simulator and property tests all feed
it snapshots of free counters. Which host to choose is a policy and lives in provisioning.placement.

Rounding when a plan is split over nodes: node i giving g_i of the g GPUs gives v*g_i/g vCPUs and
m*g_i/g MiB. Every share but the largest is rounded down to whole cores (at least one core) and
whole MiB; the largest share (most GPUs, lowest node index on a tie) takes the remainder. So the
3-GPU plan with 20 vCPUs and 96 GiB over 2+1 gives 14 vCPUs + 64 GiB and 6 vCPUs + 32 GiB.
A share with an odd vCPU count on an SMT node still takes the whole last core; its idle sibling
goes to nobody, because both threads of a core always belong to the same guest.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import combinations
from math import ceil

GPU_HOST = "gpu"
STANDARD_HOST = "standard"
MIB_PER_HUGEPAGE = 1024
# A bound on the repeated placements of one plan on one host (Nanodes on a big standard host).
MAX_SLOTS_PER_HOST = 512


@dataclass(frozen=True)
class NodeFree:
    """What one NUMA node has left, from the capacity counters."""

    node_id: int
    index: int
    free_gpus: int
    free_cores: int
    threads_per_core: int
    free_memory_mib: int
    free_hugepages_1g: int = 0
    gpu_model_id: int | None = None

    @property
    def free_vcpus(self) -> int:
        return self.free_cores * self.threads_per_core


@dataclass(frozen=True)
class HostFree:
    host_id: int
    hostname: str
    nodes: tuple[NodeFree, ...]
    kind: str = GPU_HOST

    @property
    def free_gpus(self) -> int:
        return sum(node.free_gpus for node in self.nodes)


@dataclass(frozen=True)
class Shape:
    """What a plan asks for. `gpu_model_id` is None for plans without GPUs."""

    gpus: int
    vcpus: int
    memory_mib: int
    gpu_model_id: int | None = None

    @classmethod
    def of(cls, plan) -> "Shape":
        return cls(plan.gpus, plan.vcpus, plan.memory_mib, plan.gpu_model_id if plan.gpus else None)

    @property
    def host_kind(self) -> str:
        return GPU_HOST if self.gpus else STANDARD_HOST


@dataclass(frozen=True)
class NodeShare:
    """What one node gives to one guest."""

    node_id: int
    index: int
    gpus: int
    vcpus: int
    cores: int
    memory_mib: int
    hugepages_1g: int = 0


@dataclass(frozen=True)
class Split:
    """One way to place a shape on one host: a share per NUMA node used, by node index."""

    host_id: int
    shares: tuple[NodeShare, ...]

    @property
    def node_count(self) -> int:
        return len(self.shares)


def node_shares(shape: Shape, parts: Sequence[tuple[NodeFree, int]]) -> tuple[NodeShare, ...] | None:
    """The shares of a GPU shape for `parts` = (node, GPUs it gives), or None when the arithmetic cannot
    give every node at least one core. Fitting is checked separately (`share_fits`)."""
    order = sorted(parts, key=lambda part: (-part[1], part[0].index))
    shares = []
    vcpus_left, memory_left = shape.vcpus, shape.memory_mib
    for node, gpus in order[1:]:
        tpc = node.threads_per_core
        vcpus = max(tpc, shape.vcpus * gpus // (shape.gpus * tpc) * tpc)
        memory = shape.memory_mib * gpus // shape.gpus
        shares.append(_share(node, gpus, vcpus, memory))
        vcpus_left -= vcpus
        memory_left -= memory
    if vcpus_left < 1 or memory_left < 1:
        return None
    largest, gpus = order[0]
    shares.append(_share(largest, gpus, vcpus_left, memory_left))
    return tuple(sorted(shares, key=lambda share: share.index))


def _share(node: NodeFree, gpus: int, vcpus: int, memory_mib: int) -> NodeShare:
    pages = memory_mib // MIB_PER_HUGEPAGE
    # 1 GiB pages back a share only wholly: a guest cell half on hugepages gains nothing.
    hugepages = pages if memory_mib % MIB_PER_HUGEPAGE == 0 and 0 < pages <= node.free_hugepages_1g else 0
    return NodeShare(
        node_id=node.node_id,
        index=node.index,
        gpus=gpus,
        vcpus=vcpus,
        cores=ceil(vcpus / node.threads_per_core),
        memory_mib=memory_mib,
        hugepages_1g=hugepages,
    )


def share_fits(node: NodeFree, share: NodeShare) -> bool:
    return (
        share.gpus <= node.free_gpus
        and share.cores <= node.free_cores
        and share.memory_mib <= node.free_memory_mib
    )


def compositions(total: int, caps: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every way to write `total` as len(caps) parts with 1 <= part_i <= caps[i]."""
    if len(caps) == 1:
        if 1 <= total <= caps[0]:
            yield (total,)
        return
    rest_max = sum(caps[1:])
    for first in range(max(1, total - rest_max), min(caps[0], total - len(caps) + 1) + 1):
        for rest in compositions(total - first, caps[1:]):
            yield (first, *rest)


def host_splits(host: HostFree, shape: Shape) -> list[Split]:
    """Every feasible split of `shape` on `host` that uses as few NUMA nodes as this host allows."""
    if host.kind != shape.host_kind:
        return []
    if shape.gpus:
        return _gpu_splits(host, shape)
    return _standard_splits(host, shape)


def _gpu_splits(host: HostFree, shape: Shape) -> list[Split]:
    nodes = [n for n in host.nodes if n.gpu_model_id == shape.gpu_model_id and n.free_gpus > 0]
    if sum(n.free_gpus for n in nodes) < shape.gpus:
        return []
    for count in range(1, min(len(nodes), shape.gpus) + 1):
        found = []
        for combo in combinations(nodes, count):
            for parts in compositions(shape.gpus, [n.free_gpus for n in combo]):
                shares = node_shares(shape, list(zip(combo, parts, strict=True)))
                if shares is not None and all(
                    share_fits(n, s) for n, s in zip(sorted(combo, key=_by_index), shares, strict=True)
                ):
                    found.append(Split(host.host_id, shares))
        if found:
            return found
    return []


def _by_index(node: NodeFree) -> int:
    return node.index


def _standard_splits(host: HostFree, shape: Shape) -> list[Split]:
    """CPUs and memory from one node when one has room, else from the fewest nodes, whole cores each."""
    nodes = [n for n in host.nodes if n.free_cores > 0]
    for count in range(1, len(nodes) + 1):
        found = []
        for combo in combinations(nodes, count):
            shares = _standard_shares(shape, combo)
            if shares is not None:
                found.append(Split(host.host_id, shares))
        if found:
            return found
    return []


def _standard_shares(shape: Shape, combo: Sequence[NodeFree]) -> tuple[NodeShare, ...] | None:
    if len(combo) == 1:
        node = combo[0]
        share = _share(node, 0, shape.vcpus, shape.memory_mib)
        return (share,) if share_fits(node, share) else None
    # Most free cores first; every node of the combination gives at least one core.
    order = sorted(combo, key=lambda n: (-n.free_vcpus, n.index))
    vcpus_left = shape.vcpus
    takes = []
    for position, node in enumerate(order):
        later = len(order) - position - 1
        take = min(node.free_vcpus, vcpus_left - later)
        if take < 1:
            return None
        takes.append((node, take))
        vcpus_left -= take
    if vcpus_left:
        return None
    pairs = []
    memory_left = shape.memory_mib
    for node, vcpus in takes[1:]:
        memory = shape.memory_mib * vcpus // shape.vcpus
        pairs.append((node, _share(node, 0, vcpus, memory)))
        memory_left -= memory
    if memory_left < 1:
        return None
    pairs.append((takes[0][0], _share(takes[0][0], 0, takes[0][1], memory_left)))
    if not all(share_fits(node, share) for node, share in pairs):
        return None
    return tuple(sorted((share for _, share in pairs), key=lambda share: share.index))


def apply_split(host: HostFree, split: Split, *, sign: int = -1) -> HostFree:
    """The host after placing (sign=-1) or removing (sign=+1) a split."""
    by_node = {share.node_id: share for share in split.shares}
    nodes = []
    for node in host.nodes:
        share = by_node.get(node.node_id)
        if share is None:
            nodes.append(node)
            continue
        nodes.append(
            replace(
                node,
                free_gpus=node.free_gpus + sign * share.gpus,
                free_cores=node.free_cores + sign * share.cores,
                free_memory_mib=node.free_memory_mib + sign * share.memory_mib,
                free_hugepages_1g=node.free_hugepages_1g + sign * share.hugepages_1g,
            )
        )
    return replace(host, nodes=tuple(nodes))


def tightness(host: HostFree, split: Split) -> tuple[int, ...]:
    """Best fit inside one host: fewest nodes, then the fewest GPUs and cores left on the nodes used."""
    used = {share.node_id: share for share in split.shares}
    left_gpus = left_cores = 0
    for node in host.nodes:
        share = used.get(node.node_id)
        if share is not None:
            left_gpus += node.free_gpus - share.gpus
            left_cores += node.free_cores - share.cores
    return (split.node_count, left_gpus, left_cores, *(share.index for share in split.shares))


def tightest_split(host: HostFree, shape: Shape) -> Split | None:
    splits = host_splits(host, shape)
    return min(splits, key=lambda split: tightness(host, split)) if splits else None


def sellable_on_host(host: HostFree, shape: Shape) -> int:
    """How many more guests of `shape` fit on `host`, placing each as tightly as a claim would."""
    return _sellable(host_signature(host), shape)


def sellable_on_signature(signature: tuple, shape: Shape) -> int:
    """sellable_on_host for a host_signature, for callers that reuse one signature for many plans."""
    return _sellable(signature, shape)


def host_signature(host: HostFree) -> tuple:
    """The host with its ids removed, so hosts in the same state share one cached answer. Plain tuples:
    at 10,000 hosts building dataclasses here was most of a capacity report."""
    return (
        host.kind,
        tuple(
            (
                n.index,
                n.free_gpus,
                n.free_cores,
                n.threads_per_core,
                n.free_memory_mib,
                n.free_hugepages_1g,
                n.gpu_model_id,
            )
            for n in sorted(host.nodes, key=_by_index)
        ),
    )


@lru_cache(maxsize=65536)
def _sellable(signature: tuple, shape: Shape) -> int:
    kind, nodes = signature
    host = HostFree(
        host_id=0,
        hostname="",
        nodes=tuple(NodeFree(position, *node) for position, node in enumerate(nodes)),
        kind=kind,
    )
    count = 0
    while count < MAX_SLOTS_PER_HOST:
        split = tightest_split(host, shape)
        if split is None:
            break
        host = apply_split(host, split)
        count += 1
    return count


def feedable_gpus(node: NodeFree, shapes: Sequence[Shape]) -> int:
    """How many of the node's free GPUs its free cores and RAM can still feed, at the vCPUs and memory
    per GPU of the leanest plan of its model. The rest are stranded."""
    best = 0
    for shape in shapes:
        if shape.gpus and shape.gpu_model_id == node.gpu_model_id:
            best = max(
                best,
                min(
                    node.free_gpus,
                    node.free_vcpus * shape.gpus // shape.vcpus,
                    node.free_memory_mib * shape.gpus // shape.memory_mib,
                ),
            )
    return best
