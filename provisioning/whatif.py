"""What if: the live fleet's capacity after a scenario, under best fit, first fit and spread side by side.

It reads one snapshot of the rows capacity is computed from (inventory.selectors.capacity_rows), changes
a copy of them in memory and classifies the copy as a real snapshot would be classified. Nothing is
written: no row, no counter, no lock. In order:

1. drain hosts (their free cards go out of service, they take no new guest);
2. mark cards faulty (refused for a card a guest holds, as gpu_mark_faulty refuses it);
3. add hosts of a seed_fleet profile (inventory.fleet.PROFILES) to the scenario's region;
4. place the requests, in the order given, each where the policy would put it on the whole region
   (provisioning.placement.SimulatedFleet); a request that fits nowhere is counted as refused.

A real claim ranks a window of the best CANDIDATE_WINDOW nodes by the counters' index rather than the
whole region, so in a large fleet with many equal hosts it can pick another host of the same state;
the numbers agree whenever the hosts it could choose are alike (see tests/provisioning/test_whatif.py).
"""

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings

from inventory.counters import cores_of, shared_iommu_groups
from inventory.fit import Shape, Split
from inventory.fleet import PROFILES
from inventory.models import GpuDevice, GpuModel, Host, InstanceType, Region
from inventory.selectors import (
    CapacityRows,
    RegionCapacity,
    capacity_rows,
    gpu_bucket,
    selling_plans,
    snapshot_of,
    summarize,
)
from inventory.services import reserved_cpu_ids
from provisioning.exceptions import InvalidRequest
from provisioning.placement import POLICIES, SimulatedFleet

__all__ = ["PolicyOutcome", "Scenario", "ScenarioError", "WhatIf", "capacity_whatif", "parse_scenario"]

MAX_REQUESTS = 10_000
MAX_ADDED_HOSTS = 10_000


class ScenarioError(InvalidRequest):
    """The scenario names something that is not there, or asks for something the fleet would refuse."""


@dataclass(frozen=True)
class Scenario:
    region: str
    requests: tuple[tuple[str, int], ...] = ()  # (plan id, how many), placed in this order
    drain: tuple[str, ...] = ()  # hostnames
    faulty: tuple[tuple[str, str], ...] = ()  # (hostname, PCI address)
    add_hosts: tuple[tuple[str, int], ...] = ()  # (seed_fleet profile, how many)

    def describe(self) -> list[str]:
        said = [f"drain {h}" for h in self.drain]
        said += [f"mark {pci} on {h} faulty" for h, pci in self.faulty]
        said += [f"add {n} {profile} host{'s' if n != 1 else ''}" for profile, n in self.add_hosts]
        said += [f"{n} x {plan}" for plan, n in self.requests]
        return said or ["nothing changed"]


@dataclass
class PolicyOutcome:
    policy: str
    placed: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    capacity: list[RegionCapacity] = field(default_factory=list)  # the region, per GPU model

    def sellable(self) -> dict[tuple[str, str], int]:
        """{(GPU model, plan): how many more} for the region's GPU plans."""
        return {
            (rc.gpu_model, p.plan): p.sellable
            for rc in self.capacity
            if rc.kind == "gpu"
            for p in rc.sellable
        }

    def as_dict(self) -> dict:
        return {
            "policy": self.policy,
            "placed": self.placed,
            "refused": self.refused,
            "capacity": [rc.as_dict() for rc in self.capacity],
        }


@dataclass
class WhatIf:
    scenario: Scenario
    now: list[RegionCapacity]  # the region as it is
    outcomes: list[PolicyOutcome]

    def table(self) -> list[tuple[str, str, list[str]]]:
        """What the page and the command print: (what, now, after under each policy in POLICIES order).

        Requests placed (of those asked), then per GPU model the cards allocated, free and stranded and
        how many more of each plan could be sold."""
        lines: list[tuple[str, str, list[str]]] = []
        for plan, count in _merged(self.scenario.requests):
            lines.append(
                (f"{plan} placed (of {count})", "", [str(o.placed.get(plan, 0)) for o in self.outcomes])
            )
        now = {(rc.gpu_model, rc.kind): rc for rc in self.now}
        after = [{(rc.gpu_model, rc.kind): rc for rc in o.capacity} for o in self.outcomes]
        keys = list(now) + [k for a in after for k in a if k not in now]
        keys = list(dict.fromkeys(k for k in keys if k[1] == "gpu"))
        for key in keys:
            model = key[0] or "(no cards)"
            for bucket in ("allocated", "free", "stranded"):
                lines.append(
                    (
                        f"{model} GPUs {bucket}",
                        _count(now.get(key), bucket),
                        [_count(a.get(key), bucket) for a in after],
                    )
                )
            plans = [p.plan for rc in [now.get(key), *(a.get(key) for a in after)] if rc for p in rc.sellable]
            for plan in dict.fromkeys(plans):
                lines.append(
                    (
                        f"{model} sellable {plan}",
                        _sellable(now.get(key), plan),
                        [_sellable(a.get(key), plan) for a in after],
                    )
                )
        return lines

    def as_dict(self) -> dict:
        return {
            "region": self.scenario.region,
            "scenario": self.scenario.describe(),
            "now": [rc.as_dict() for rc in self.now],
            "after": {o.policy: o.as_dict() for o in self.outcomes},
        }


def _merged(requests) -> list[tuple[str, int]]:
    merged: dict[str, int] = {}
    for plan, count in requests:
        merged[plan] = merged.get(plan, 0) + count
    return list(merged.items())


def _count(rc: RegionCapacity | None, bucket: str) -> str:
    return str(getattr(rc.gpus, bucket)) if rc else "0"


def _sellable(rc: RegionCapacity | None, plan: str) -> str:
    return str(next((p.sellable for p in rc.sellable if p.plan == plan), 0)) if rc else "0"


def parse_scenario(
    *,
    region: str,
    requests: Sequence[str] = (),
    drain: Sequence[str] = (),
    faulty: Sequence[str] = (),
    add_hosts: Sequence[str] = (),
) -> Scenario:
    """A scenario from the words the command and the page take: requests "g1-gpu-rtx6000-2=10",
    faulty "hostname:0000:3b:00.0", added hosts "rtx6000-2x4=5" (or a profile alone for one)."""
    return Scenario(
        region=region.strip(),
        requests=tuple(_pair(r, "request", "g1-gpu-rtx6000-2=10", MAX_REQUESTS) for r in _words(requests)),
        drain=tuple(_words(drain)),
        faulty=tuple(_card(f) for f in _words(faulty)),
        add_hosts=tuple(
            _pair(a if "=" in a else f"{a}=1", "added hosts", "rtx6000-2x4=5", MAX_ADDED_HOSTS)
            for a in _words(add_hosts)
        ),
    )


def _words(values: Sequence[str]) -> list[str]:
    return [w for value in values for w in value.replace(",", " ").split() if w]


def _pair(word: str, what: str, example: str, most: int) -> tuple[str, int]:
    name, _, count = word.partition("=")
    if not name or not count.isdigit() or not 1 <= int(count) <= most:
        raise ScenarioError(
            f"{what} {word!r}: write name=count with a count from 1 to {most}, like {example}."
        )
    return name, int(count)


def _card(word: str) -> tuple[str, str]:
    hostname, _, pci = word.partition(":")
    if not hostname or not pci:
        raise ScenarioError(f"faulty card {word!r}: write hostname:pci-address, like gpu-01:0000:3b:00.0.")
    return hostname, pci


def capacity_whatif(*, scenario: Scenario) -> WhatIf:
    """The region's capacity now and after the scenario under each policy. Reads only."""
    region = Region.objects.filter(pk=scenario.region).first()
    if region is None:
        known = ", ".join(Region.objects.values_list("id", flat=True))
        raise ScenarioError(f"No region {scenario.region!r}; regions: {known}.")
    plans = selling_plans()
    by_id = {plan.id: plan for plan in plans}
    for plan_id, _count in scenario.requests:
        if plan_id not in by_id:
            raise ScenarioError(f"No plan {plan_id!r} on sale; plans: {', '.join(by_id)}.")
    for profile, _count in scenario.add_hosts:
        if profile not in PROFILES:
            raise ScenarioError(f"No host profile {profile!r}; profiles: {', '.join(sorted(PROFILES))}.")
    live = capacity_rows(region=region)
    now = summarize(snapshot_of(live), plans, with_hosts=False)
    changed = _change_fleet(live, scenario)
    outcomes = []
    for name, policy in POLICIES.items():
        rows = _copy(changed)
        outcome = PolicyOutcome(policy=name)
        splits = _place(rows, scenario, by_id, policy, outcome)
        _take(rows, splits)
        outcome.capacity = summarize(snapshot_of(rows), plans, with_hosts=False)
        outcomes.append(outcome)
    return WhatIf(scenario=scenario, now=now, outcomes=outcomes)


def _copy(rows: CapacityRows) -> CapacityRows:
    return CapacityRows(
        hosts=dict(rows.hosts), nodes=list(rows.nodes), gpus=list(rows.gpus), models=rows.models
    )


def _change_fleet(live: CapacityRows, scenario: Scenario) -> CapacityRows:
    rows = _copy(live)
    by_name = {host.hostname: host_id for host_id, host in rows.hosts.items()}
    for hostname in scenario.drain:
        if hostname not in by_name:
            raise ScenarioError(f"No host {hostname!r} in {scenario.region}.")
        host = copy.copy(rows.hosts[by_name[hostname]])
        host.state = Host.State.DRAINING
        rows.hosts[host.pk] = host
    for hostname, pci in scenario.faulty:
        if hostname not in by_name:
            raise ScenarioError(f"No host {hostname!r} in {scenario.region}.")
        host_id = by_name[hostname]
        matches = [i for i, g in enumerate(rows.gpus) if g[0] == host_id and g[7] == pci]
        if not matches:
            raise ScenarioError(f"No GPU {pci} on {hostname}.")
        gpu = rows.gpus[matches[0]]
        if gpu[6]:
            raise ScenarioError(f"{pci} on {hostname} is in use by a guest: it cannot be marked faulty.")
        if gpu[3] == GpuDevice.State.REMOVED:
            raise ScenarioError(f"{pci} on {hostname} is removed (missing from the host).")
        rows.gpus[matches[0]] = (*gpu[:3], GpuDevice.State.FAULTY, *gpu[4:])
    for profile, count in scenario.add_hosts:
        _add_hosts(rows, region_id=scenario.region, profile=profile, count=count)
    return rows


def _add_hosts(rows: CapacityRows, *, region_id: str, profile: str, count: int) -> None:
    """Hosts of a seed_fleet profile with nothing allocated, as fleet_seed would write them, with the
    ids the next rows would get (above every id read: first fit ranks by id)."""
    shape = PROFILES[profile]
    template = shape.describe(f"whatif-{profile}")
    model_id = None
    if template.gpus:
        gpu = template.gpus[0]
        model = GpuModel.objects.filter(vendor_id=gpu.vendor_id, product_id=gpu.product_id).first()
        if model is None:
            raise ScenarioError(f"{profile} hosts hold {gpu.product_name}, which is not a known GPU model.")
        model_id = model.pk
        rows.models.setdefault(model.pk, model)
    reserved = reserved_cpu_ids(
        description=template, cores_per_node=settings.GPUADMIN_RESERVED_CORES_PER_NODE
    )
    reserved_memory = settings.GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE
    next_host = max(rows.hosts, default=0) + 1
    next_node = max((n[1] for n in rows.nodes), default=0) + 1
    added = sum(1 for h in rows.hosts.values() if h.hostname.startswith("(new "))
    for number in range(added + 1, added + count + 1):
        host_id, next_host = next_host, next_host + 1
        rows.hosts[host_id] = Host(
            id=host_id, hostname=f"(new {profile} #{number})", region_id=region_id, kind=shape.kind
        )
        for cell in template.cells:
            node_id, next_node = next_node, next_node + 1
            cores, threads = cores_of(
                (c.cpu_id, list(c.siblings), c.cpu_id in reserved, False) for c in cell.cpus
            )
            cards = [g for g in template.gpus if g.numa_node == cell.index]
            rows.nodes.append(
                (
                    host_id,
                    node_id,
                    cell.index,
                    cores,
                    threads,
                    cell.memory_mib,
                    min(reserved_memory, cell.memory_mib),
                    0,
                    cell.hugepages_1g_total,
                    0,
                    model_id if cards else None,
                )
            )
            for card in cards:
                rows.gpus.append(
                    (
                        host_id,
                        node_id,
                        model_id,
                        GpuDevice.State.AVAILABLE,
                        card.iommu_group,
                        _json_list(card.foreign_functions),
                        False,
                        card.pci_address,
                    )
                )


def _json_list(values) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def _place(
    rows: CapacityRows, scenario: Scenario, plans: dict[str, InstanceType], policy, outcome: PolicyOutcome
) -> list[Split]:
    snapshot = snapshot_of(rows)
    enabled = [
        free for host_id, free in snapshot.free.items() if rows.hosts[host_id].state == Host.State.ENABLED
    ]
    fleet = SimulatedFleet(enabled, policy)
    splits = []
    for plan_id, count in scenario.requests:
        shape = Shape.of(plans[plan_id])
        for _ in range(count):
            split = fleet.place(shape)
            if split is None:
                outcome.refused[plan_id] = outcome.refused.get(plan_id, 0) + 1
                continue
            outcome.placed[plan_id] = outcome.placed.get(plan_id, 0) + 1
            splits.append(split)
    return splits


def _take(rows: CapacityRows, splits: list[Split]) -> None:
    """Write the placements into the copied rows: the node counters, and cards now held."""
    shares = {}
    for split in splits:
        for share in split.shares:
            taken = shares.setdefault(share.node_id, [0, 0, 0, 0])
            taken[0] += share.gpus
            taken[1] += share.cores
            taken[2] += share.memory_mib
            taken[3] += share.hugepages_1g
    for position, node in enumerate(rows.nodes):
        taken = shares.get(node[1])
        if taken:
            host_id, node_id, index, cores, tpc, memory, reserved, used, hp_total, hp_used, model_id = node
            rows.nodes[position] = (
                host_id,
                node_id,
                index,
                cores - taken[1],
                tpc,
                memory,
                reserved,
                used + taken[2],
                hp_total,
                hp_used + taken[3],
                model_id,
            )
    wanted = {node_id: taken[0] for node_id, taken in shares.items() if taken[0]}
    if not wanted:
        return
    # Only cards counted free can be placed: the same classification the snapshot made.
    node_model = {n[1]: n[10] for n in rows.nodes}
    shared = shared_iommu_groups((g[0], g[4]) for g in rows.gpus)
    for position, gpu in enumerate(rows.gpus):
        if (
            wanted.get(gpu[1])
            and gpu_bucket(gpu, hosts=rows.hosts, node_model=node_model, shared=shared) == "free"
        ):
            rows.gpus[position] = (*gpu[:6], True, gpu[7])
            wanted[gpu[1]] -= 1
