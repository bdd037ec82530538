"""The fleet's invariants, checked from outside: what must hold whatever the workers and servers did.

`fleet_violations()` reads the database (no GPU or CPU held twice or by an instance that is gone, no
address on two live instances, counters equal to a recount, every settled job finished or failed with a
reason) and, with `hypervisor=True`, every host's domains (each live instance's domain on its
allocation's host, powered as the instance should be, holding exactly the CPUs, PCI functions and NUMA
nodes of its allocation; no domain of ours without a live instance). It returns sentences, one per
violation; an empty list means the fleet is sound. `manage.py audit_fleet` prints them.
"""

from collections import Counter

from django.db import transaction
from django.db.models import Count, Q

from hypervisor import lifecycle
from hypervisor.errors import HypervisorError
from inventory.counters import numa_counters_recount
from inventory.models import GpuDevice, Host
from networking.models import Ipv4Address
from provisioning.driver import driver_for
from provisioning.models import AllocatedCpu, AllocatedGpu, Allocation, Instance, Job

GONE = (Instance.Status.DELETED, Instance.Status.FAILED)


def fleet_violations(*, hypervisor: bool = True, settled: bool = True) -> list[str]:
    """Every broken invariant, in words. `settled`: no job should be in flight any more."""
    found = _allocation_violations() + _counter_violations() + _address_violations()
    found += _job_violations(settled=settled)
    if hypervisor:
        found += _domain_violations()
    return found


def _allocation_violations() -> list[str]:
    found = []
    for model, what in ((AllocatedGpu, "gpu"), (AllocatedCpu, "cpu")):
        twice = (
            model.objects.filter(released_at__isnull=True, allocation__released_at__isnull=True)
            .values(what)
            .annotate(holders=Count("allocation"))
            .filter(holders__gt=1)
        )
        found += [f"{what} {row[what]} is held by {row['holders']} active allocations" for row in twice]
        stale = model.objects.filter(released_at__isnull=True, allocation__released_at__isnull=False)
        found += [f"{what} {row.pk} is active in released allocation {row.allocation_id}" for row in stale]
    for allocation in Allocation.objects.filter(released_at__isnull=True, instance__status__in=GONE):
        found.append(
            f"allocation {allocation.pk} is active but instance {allocation.instance_id} is "
            f"{allocation.instance.status}: its GPUs, CPUs and memory leaked"
        )
    holders = Counter(
        Allocation.objects.filter(released_at__isnull=True).values_list("instance_id", flat=True)
    )
    found += [f"instance {pk} holds {n} active allocations" for pk, n in holders.items() if n > 1]
    live = Instance.objects.exclude(status__in=GONE).exclude(status=Instance.Status.PROVISIONING)
    for instance in live.exclude(pk__in=list(holders)):
        found.append(f"instance {instance.pk} is {instance.status} with no active allocation")
    for allocation in Allocation.objects.filter(released_at__isnull=True).select_related("instance"):
        if allocation.instance.host_id != allocation.host_id:
            found.append(
                f"instance {allocation.instance_id} is on host {allocation.instance.host_id} "
                f"but its allocation {allocation.pk} is on host {allocation.host_id}"
            )
    held = AllocatedGpu.objects.filter(released_at__isnull=True).values_list("gpu_id", flat=True)
    unusable = GpuDevice.objects.filter(pk__in=held).exclude(state=GpuDevice.State.AVAILABLE)
    found += [f"{gpu} is allocated while {gpu.state}" for gpu in unusable.select_related("host")]
    return found


def _counter_violations() -> list[str]:
    """A recount that would change anything means the claim counters drifted from the rows."""
    found = []
    for host in Host.objects.order_by("hostname"):
        with transaction.atomic():
            changes = numa_counters_recount(host=host)
            transaction.set_rollback(True)  # report, do not repair
        found += [f"{host.hostname}: counter {change}" for change in changes]
    return found


def _address_violations() -> list[str]:
    owners: dict[str, list[int]] = {}
    for pk, addresses in Instance.objects.exclude(status__in=GONE).values_list("pk", "ipv4"):
        for address in addresses or []:
            owners.setdefault(address, []).append(pk)
    found = [f"address {a} is on instances {pks}" for a, pks in sorted(owners.items()) if len(pks) > 1]
    # What the API shows is what the pool says the instance holds; a gone instance holds nothing.
    held = dict(Ipv4Address.objects.filter(holder__isnull=False).values_list("holder_id", "address"))
    for pk, status, addresses in Instance.objects.filter(
        Q(pk__in=held.keys()) | ~Q(status__in=GONE)
    ).values_list("pk", "status", "ipv4"):
        if status in GONE:
            found.append(f"address {held[pk]} is held by instance {pk}, which is {status}")
        elif status != Instance.Status.DELETING and [held.get(pk)] != (addresses or [None]):
            found.append(f"instance {pk} shows {addresses or 'no address'} but holds {held.get(pk)}")
    return found


def _job_violations(*, settled: bool) -> list[str]:
    found = [
        f"job {job.pk} ({job.action}) failed without a reason"
        for job in Job.objects.filter(status=Job.Status.FAILED, error="")
    ]
    if settled:
        found += [
            f"job {job.pk} ({job.action}, instance {job.instance_id}) is still {job.status}"
            for job in Job.objects.filter(status__in=Job.IN_FLIGHT)
        ]
        found += [
            f"{gpu} is still cleaning"
            for gpu in GpuDevice.objects.filter(state=GpuDevice.State.CLEANING).select_related("host")
        ]
    return found


def _domain_violations() -> list[str]:
    found = []
    allocations = {
        a.instance_id: a
        for a in Allocation.objects.filter(released_at__isnull=True).prefetch_related(
            "gpus__gpu", "cpus__cpu", "memory__numa_node"
        )
    }
    for host in Host.objects.exclude(state=Host.State.DISABLED).order_by("hostname"):
        driver = driver_for(host)
        try:
            domains = {d.uuid: d for d in driver.managed_domains()}
        except HypervisorError as exc:
            found.append(f"{host.hostname}: could not list domains: {exc}")
            continue
        live = Instance.objects.filter(host=host).exclude(status__in=GONE)
        for instance in live:
            domain = domains.pop(str(instance.domain_uuid), None)
            label = f"instance {instance.pk} on {host.hostname}"
            if domain is None:
                if instance.status != Instance.Status.PROVISIONING:
                    found.append(f"{label} ({instance.status}) has no domain")
                continue
            if domain.running != instance.booted:
                found.append(f"{label} should {'run' if instance.booted else 'be off'} but is {domain.state}")
            allocation = allocations.get(instance.pk)
            if allocation is not None:
                placement = driver.call(lifecycle.domain_placement, instance.domain_uuid)
                found += [f"{label}: {problem}" for problem in _placement_problems(allocation, placement)]
        found += [
            f"{host.hostname}: domain {d.name} ({d.uuid}, {d.state}) has no live instance"
            for d in domains.values()
        ]
    return found


def _placement_problems(allocation: Allocation, placement: lifecycle.DomainPlacement | None) -> list[str]:
    if placement is None:
        return ["its domain vanished while it was read"]
    problems = []
    pins = {row.vcpu: row.cpu.cpu_id for row in allocation.cpus.all() if row.released_at is None}
    if placement.vcpu_pins != pins:
        problems.append(f"domain pins {placement.vcpu_pins}, allocation holds {pins}")
    functions = sorted(f for row in allocation.gpus.all() for f in row.gpu.functions)
    if list(placement.pci_addresses) != functions:
        problems.append(
            f"domain passes through {list(placement.pci_addresses)}, allocation holds {functions}"
        )
    nodes = sorted({row.numa_node.index for row in allocation.memory.all()})
    if list(placement.memory_nodes) != nodes:
        problems.append(f"domain memory on nodes {list(placement.memory_nodes)}, allocation on {nodes}")
    return problems
