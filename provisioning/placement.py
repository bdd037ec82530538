"""Where a guest goes: pure functions from a capacity snapshot and a shape to a split or a reason.

A policy is one function scoring a (host, split) candidate; smaller is better. Every policy scores the
node count first, so a plan that fits in one node anywhere in the region uses one node: the NUMA rule
is not a preference. `best_fit` is the product's policy; `first_fit` and `spread` exist so the
packing benchmark and the what-if simulator can show what it buys.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import combinations, product

from inventory.fit import (
    HostFree,
    NodeFree,
    Shape,
    Split,
    apply_split,
    host_signature,
    host_splits,
    node_shares,
    share_fits,
    tightness,
)

Policy = Callable[[HostFree, Split], tuple]


def best_fit(host: HostFree, split: Split) -> tuple:
    """Fewest nodes; then the nodes left with the fewest free GPUs (fill holes before opening empty
    nodes, which 3- and 4-GPU plans need); then the host left with the fewest free GPUs (keep empty
    hosts empty for plans that span nodes); then the fewest cores left on the nodes used."""
    nodes, left_gpus, left_cores, *indexes = tightness(host, split)
    host_left = host.free_gpus - sum(share.gpus for share in split.shares)
    return (nodes, left_gpus, host_left, left_cores, host.host_id, *indexes)


def first_fit(host: HostFree, split: Split) -> tuple:
    """The first host (by id) and node (by index) that fits: the baseline."""
    return (split.node_count, host.host_id, *(share.index for share in split.shares))


def spread(host: HostFree, split: Split) -> tuple:
    """The emptiest node and host: spreads heat and noisy neighbours, fragments the most."""
    nodes, left_gpus, left_cores, *indexes = tightness(host, split)
    host_left = host.free_gpus - sum(share.gpus for share in split.shares)
    return (nodes, -left_gpus, -host_left, -left_cores, host.host_id, *indexes)


POLICIES: dict[str, Policy] = {"best_fit": best_fit, "first_fit": first_fit, "spread": spread}


def ranked(
    shape: Shape, hosts: Iterable[HostFree], policy: Policy = best_fit
) -> list[tuple[HostFree, Split]]:
    """Each host that can take `shape` with its best split under `policy`, best host first."""
    choices = []
    for host in hosts:
        splits = host_splits(host, shape)
        if splits:
            split = min(splits, key=lambda s, h=host: policy(h, s))
            choices.append((policy(host, split), host, split))
    choices.sort(key=lambda choice: choice[0])
    return [(host, split) for _, host, split in choices]


def place(shape: Shape, hosts: Iterable[HostFree], policy: Policy = best_fit) -> Split | None:
    choices = ranked(shape, hosts, policy)
    return choices[0][1] if choices else None


class SimulatedFleet:
    """Hosts as snapshots that simulated placements change, placed under one policy as `place` would.

    Hosts in the same state differ only by id, and every policy prefers the lowest id among equals, so
    one representative per group is ranked: placing on 10,000 hosts costs about as much as on the
    handful of distinct states they are in. The packing benchmark and the what-if simulator use it.
    """

    def __init__(self, hosts: Iterable[HostFree], policy: Policy = best_fit) -> None:
        self.policy = policy
        self.hosts = {h.host_id: h for h in hosts}
        self.groups: dict[tuple, set[int]] = defaultdict(set)
        for host in self.hosts.values():
            self.groups[host_signature(host)].add(host.host_id)

    def set_host(self, host: HostFree) -> None:
        """Replace a host's snapshot (after a placement, a removal, or a change of its own)."""
        old = self.hosts[host.host_id]
        group = self.groups[host_signature(old)]
        group.discard(host.host_id)
        if not group:
            del self.groups[host_signature(old)]
        self.hosts[host.host_id] = host
        self.groups[host_signature(host)].add(host.host_id)

    def place(self, shape: Shape) -> Split | None:
        """Place one guest of `shape` where the policy says, or None when nothing fits."""
        best = None
        for ids in self.groups.values():
            host = self.hosts[min(ids)]
            for split in host_splits(host, shape):
                key = self.policy(host, split)
                if best is None or key < best[0]:
                    best = (key, split)
        if best is None:
            return None
        split = best[1]
        self.set_host(apply_split(self.hosts[split.host_id], split))
        return split

    def remove(self, split: Split) -> None:
        self.set_host(apply_split(self.hosts[split.host_id], split, sign=+1))


def exhaustive_fit(shape: Shape, hosts: Iterable[HostFree]) -> Split | None:
    """Any fit at all, by brute force over every node subset and every GPU split: the reference that a
    rejection is tested against. Fewest nodes first. GPU shapes only."""
    best: Split | None = None
    for host in hosts:
        if host.kind != shape.host_kind:
            continue
        nodes = [n for n in host.nodes if n.gpu_model_id == shape.gpu_model_id]
        for count in range(1, len(nodes) + 1):
            if best is not None and count >= best.node_count:
                break
            for combo in combinations(nodes, count):
                for parts in product(*(range(1, n.free_gpus + 1) for n in combo)):
                    if sum(parts) != shape.gpus:
                        continue
                    shares = node_shares(shape, list(zip(combo, parts, strict=True)))
                    by_id = {n.node_id: n for n in combo}
                    if shares is not None and all(share_fits(by_id[s.node_id], s) for s in shares):
                        best = Split(host.host_id, shares)
                        break
                if best is not None and best.node_count == count:
                    break
    return best


@dataclass(frozen=True)
class RequestLabels:
    """Names for the rejection message: 'us-east', 'g1-gpu-rtx6000-4', 'RTX 6000'."""

    region: str
    plan: str
    gpu_model: str = ""


def explain(shape: Shape, hosts: Sequence[HostFree], labels: RequestLabels, *, hosts_in_service: int) -> str:
    """Why nothing fits, naming region, plan and the scarce resource, in words a person can act on.

    `hosts` is the snapshot the placement was refused on (hosts of the right kind, enabled, in the
    region); `hosts_in_service` counts those hosts selling the plan's model (or standard hosts).
    """
    region, plan, model = labels.region, labels.plan, labels.gpu_model
    if not shape.gpus:
        if not hosts_in_service:
            return f"{region} has no standard hosts in service for {plan}."
        return (
            f"{region} has no standard host with {shape.vcpus} free dedicated cores and "
            f"{_memory(shape.memory_mib)} of free memory for {plan}."
        )
    if not hosts_in_service:
        return f"{region} has no {model} GPU hosts in service for {plan}."
    mine = [_only_model(host, shape.gpu_model_id) for host in hosts]
    free = sum(host.free_gpus for host in mine)
    if free == 0:
        return f"{region} has no free {model} GPUs for {plan}, which needs {shape.gpus}."
    if free < shape.gpus:
        return f"{region} has {_gpus(free, model)}, but {plan} needs {shape.gpus}."
    most = max(host.free_gpus for host in mine)
    said = f"{region} has {_gpus(free, model)}, but no host has {shape.gpus} free"
    if most < shape.gpus:
        return f"{said} (at most {most} on one host) for {plan}."
    if _fits_somewhere(shape, mine, cores=False):
        return f"{said} on NUMA nodes with {shape.vcpus} free dedicated cores for {plan}."
    if _fits_somewhere(shape, mine, memory=False):
        return f"{said} on NUMA nodes with {_memory(shape.memory_mib)} of free memory for {plan}."
    return (
        f"{said} on NUMA nodes with {shape.vcpus} free dedicated cores and "
        f"{_memory(shape.memory_mib)} of free memory for {plan}."
    )


def _only_model(host: HostFree, model_id: int | None) -> HostFree:
    return replace(host, nodes=tuple(n for n in host.nodes if n.gpu_model_id == model_id))


def _fits_somewhere(
    shape: Shape, hosts: Sequence[HostFree], *, cores: bool = True, memory: bool = True
) -> bool:
    """Would the shape fit if cores (or memory) were plentiful? Tells which of the two is scarce."""
    plenty = 1 << 30

    def relaxed(node: NodeFree) -> NodeFree:
        return replace(
            node,
            free_cores=node.free_cores if cores else plenty,
            free_memory_mib=node.free_memory_mib if memory else plenty,
        )

    return any(host_splits(replace(h, nodes=tuple(relaxed(n) for n in h.nodes)), shape) for h in hosts)


def _gpus(count: int, model: str) -> str:
    return f"{count} free {model} GPU{'s' if count != 1 else ''}"


def _memory(mib: int) -> str:
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"
