"""Write what discovery reads from a host into the database, without touching allocation state.

Reading libvirt happens first, outside any transaction; the writes then happen in one transaction under
the host's row lock (the lock claims take), so a failed read or bad data changes nothing, and a claim
never sees a half-synced host. Allocation rows belong to provisioning and are never written here: a GPU
or CPU that an allocation references is never deleted. A card that vanished while allocated is flagged
(`missing_since`, `state_reason`); one that vanished while free becomes `removed`. A new card is
`available` only when its IOMMU group holds nothing but the card's own functions (and bridges).
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from hypervisor.description import CpuDescription, GpuDescription, HostDescription, NumaCellDescription
from hypervisor.discovery import discover, is_discoverable
from hypervisor.errors import HypervisorError
from inventory.counters import active_allocation_exists, numa_counters_recount
from inventory.models import GpuDevice, GpuModel, Host, HostCpu, NumaNode, Region
from inventory.services import host_create, host_record_libvirt_error, reserved_cpu_ids

MISSING_REASON = "not seen by discovery since"
SHARED_GROUP_REASON = "IOMMU group"


class HostSyncError(Exception):
    """A host could not be synced and nothing was changed. The message names the host and the cause."""


@dataclass
class SyncReport:
    hostname: str
    changes: list[str] = field(default_factory=list)
    # Display devices that are not GPUs we sell (the BMC's VGA): left out, said only on request.
    ignored: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def host_describe(*, host: Host) -> HostDescription:
    """Read the host from libvirt (no database access). Raises HostSyncError naming the host."""
    try:
        return discover(host.libvirt_uri, hostname=host.hostname)
    except HypervisorError as exc:
        host_record_libvirt_error(host_id=host.pk, error=str(exc))
        raise HostSyncError(f"{host.hostname}: {exc}; nothing was changed") from exc


def host_sync(*, host: Host, description: HostDescription | None = None) -> SyncReport:
    """Bring the host's NUMA nodes, CPUs and GPUs in line with libvirt, and stamp `last_synced_at`."""
    description = description or host_describe(host=host)
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)
        report = _apply(host=host, description=description)
        host.last_synced_at = timezone.now()
        host.save(update_fields=["last_synced_at"])
        if report.changed:
            Host.objects.filter(pk=host.pk).update(generation=F("generation") + 1)
        numa_counters_recount(host=host)
    return report


def host_enroll(
    *,
    region: Region,
    hostname: str,
    libvirt_uri: str,
    kind: str,
    profile: str = "",
    simulated: bool | None = None,
) -> tuple[Host, SyncReport]:
    """Add a host as discovery finds it: read libvirt, then create the host and its topology in one go."""
    try:
        description = discover(libvirt_uri, hostname=hostname)
    except HypervisorError as exc:
        raise HostSyncError(f"{hostname}: {exc}; the host was not added") from exc
    with transaction.atomic():
        host = host_create(
            region=region,
            hostname=hostname,
            libvirt_uri=libvirt_uri,
            kind=kind,
            description=HostDescription(hostname=hostname, cells=()),
            profile=profile,
            simulated=simulated,
        )
        report = host_sync(host=host, description=description)
    host.refresh_from_db()
    return host, report


def host_is_discoverable(*, host: Host) -> bool:
    return is_discoverable(host.libvirt_uri)


def _apply(*, host: Host, description: HostDescription) -> SyncReport:
    report = SyncReport(hostname=host.hostname)
    gpus = _sellable_gpus(host=host, description=description, report=report)
    nodes = _sync_nodes(host=host, cells=description.cells, report=report)
    _sync_cpus(host=host, description=description, nodes=nodes, report=report)
    _sync_gpus(host=host, gpus=gpus, nodes=nodes, report=report)
    _drop_vanished_nodes(host=host, cells=description.cells, report=report)
    return report


def _fail(host: Host, message: str) -> HostSyncError:
    return HostSyncError(f"{host.hostname} ({host.libvirt_uri}): {message}; nothing was changed")


def _sellable_gpus(
    *, host: Host, description: HostDescription, report: SyncReport
) -> list[tuple[GpuDescription, GpuModel]]:
    """The described GPUs with their model. A vendor we sell with an unknown product is an error."""
    models = {(m.vendor_id, m.product_id): m for m in GpuModel.objects.all()}
    vendors = {vendor for vendor, _ in models}
    sellable = []
    for gpu in description.gpus:
        model = models.get((gpu.vendor_id, gpu.product_id))
        if model is None:
            if gpu.vendor_id in vendors:
                raise _fail(
                    host,
                    f"GPU {gpu.pci_address} is {gpu.vendor_id:04x}:{gpu.product_id:04x} "
                    f"({gpu.product_name}), which is not a known GPU model; add the model first",
                )
            report.ignored.append(f"{gpu.pci_address} {gpu.product_name}: not a GPU model we sell")
            continue
        if gpu.iommu_group is None:
            raise _fail(
                host,
                f"GPU {gpu.pci_address} reports no IOMMU group, so it cannot be passed through "
                "(is the IOMMU on in the firmware and on the kernel command line?)",
            )
        if gpu.numa_node is not None and gpu.numa_node not in {c.index for c in description.cells}:
            raise _fail(
                host, f"GPU {gpu.pci_address} is on NUMA node {gpu.numa_node}, which the host does not list"
            )
        sellable.append((gpu, model))
    return sellable


def _sync_nodes(
    *, host: Host, cells: tuple[NumaCellDescription, ...], report: SyncReport
) -> dict[int, NumaNode]:
    reserved_memory = settings.GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE
    existing = {node.index: node for node in NumaNode.objects.filter(host=host)}
    nodes = {}
    for cell in cells:
        wanted = {
            "memory_mib": cell.memory_mib,
            "reserved_memory_mib": min(reserved_memory, cell.memory_mib),
            "hugepages_1g_total": cell.hugepages_1g_total,
        }
        node = existing.get(cell.index)
        if node is None:
            node = NumaNode(host=host, index=cell.index, **wanted)
            node.full_clean(exclude=["host", "gpu_model"])
            node.save()
            report.changes.append(
                f"node {cell.index}: added, {cell.memory_mib} MiB, {len(cell.cpus)} CPUs, "
                f"{cell.hugepages_1g_total} x 1 GiB pages"
            )
        else:
            differs = {k: v for k, v in wanted.items() if getattr(node, k) != v}
            if differs:
                if node.used_memory_mib > wanted["memory_mib"] - wanted["reserved_memory_mib"]:
                    raise _fail(
                        host,
                        f"node {cell.index} now has {cell.memory_mib} MiB, less than the "
                        f"{node.used_memory_mib} MiB its guests hold",
                    )
                if node.hugepages_1g_used > wanted["hugepages_1g_total"]:
                    raise _fail(
                        host,
                        f"node {cell.index} now has {cell.hugepages_1g_total} 1 GiB pages, fewer than the "
                        f"{node.hugepages_1g_used} its guests hold",
                    )
                detail = ", ".join(f"{k} {getattr(node, k)} -> {v}" for k, v in differs.items())
                for key, value in differs.items():
                    setattr(node, key, value)
                node.save(update_fields=list(differs))
                report.changes.append(f"node {cell.index}: {detail}")
        nodes[cell.index] = node
    return nodes


def _referenced(model):
    """An Exists() true when any allocation row, active or released, points at the GPU or CPU."""
    relation = model._meta.get_field("allocations")
    return Exists(relation.related_model.objects.filter(**{relation.field.name: OuterRef("pk")}))


def _sync_cpus(
    *, host: Host, description: HostDescription, nodes: dict[int, NumaNode], report: SyncReport
) -> None:
    reserved = reserved_cpu_ids(
        description=description, cores_per_node=settings.GPUADMIN_RESERVED_CORES_PER_NODE
    )
    existing = {
        cpu.cpu_id: cpu
        for cpu in HostCpu.objects.filter(host=host).annotate(
            active=active_allocation_exists(HostCpu), referenced=_referenced(HostCpu)
        )
    }
    described: dict[int, tuple[NumaCellDescription, CpuDescription]] = {
        cpu.cpu_id: (cell, cpu) for cell in description.cells for cpu in cell.cpus
    }
    added: dict[int, list[int]] = defaultdict(list)
    new_rows = []
    for cpu_id, (cell, cpu) in sorted(described.items()):
        wanted = {
            "numa_node_id": nodes[cell.index].pk,
            "core_id": cpu.core_id,
            "socket_id": cpu.socket_id,
            "siblings": list(cpu.siblings),
            "reserved": cpu_id in reserved,
        }
        row = existing.get(cpu_id)
        if row is None:
            new_rows.append(HostCpu(host=host, cpu_id=cpu_id, **wanted))
            added[cell.index].append(cpu_id)
            continue
        if row.active and wanted["reserved"] and not row.reserved:
            # Policy would reserve a CPU a guest is pinned to: the guest keeps it until it is released.
            wanted["reserved"] = False
            report.changes.append(f"cpu {cpu_id}: to be reserved, but a running allocation is pinned to it")
        differs = {k: v for k, v in wanted.items() if getattr(row, k) != v}
        if differs:
            for key, value in differs.items():
                setattr(row, key, value)
            row.save(update_fields=list(differs))
            detail = ", ".join(f"{k.removesuffix('_id')} -> {v}" for k, v in differs.items())
            report.changes.append(f"cpu {cpu_id}: {detail}")
    HostCpu.objects.bulk_create(new_rows)
    for index, cpu_ids in sorted(added.items()):
        if existing:
            report.changes.append(f"node {index}: CPUs added: {_ids(cpu_ids)}")
    gone = [row for cpu_id, row in sorted(existing.items()) if cpu_id not in described]
    deletable = [row.pk for row in gone if not row.referenced]
    HostCpu.objects.filter(pk__in=deletable).delete()
    for row in gone:
        if not row.referenced:
            report.changes.append(f"cpu {row.cpu_id}: vanished, deleted")
            continue
        if not row.reserved:
            HostCpu.objects.filter(pk=row.pk).update(reserved=True)
        pinned = " (a running allocation is still pinned to it)" if row.active else ""
        report.changes.append(
            f"cpu {row.cpu_id}: vanished{pinned}; kept for its allocation history and reserved, "
            "so nothing new is placed on it"
        )


def _ids(cpu_ids: list[int]) -> str:
    return (
        ", ".join(map(str, cpu_ids)) if len(cpu_ids) <= 8 else f"{len(cpu_ids)} ({cpu_ids[0]}..{cpu_ids[-1]})"
    )


def _sync_gpus(
    *,
    host: Host,
    gpus: list[tuple[GpuDescription, GpuModel]],
    nodes: dict[int, NumaNode],
    report: SyncReport,
) -> None:
    now = timezone.now()
    existing = {
        gpu.pci_address: gpu
        for gpu in GpuDevice.objects.filter(host=host).annotate(active=active_allocation_exists(GpuDevice))
    }
    seen = set()
    for gpu, model in gpus:
        seen.add(gpu.pci_address)
        node = nodes[gpu.numa_node] if gpu.numa_node is not None else None
        facts = {
            "numa_node_id": node.pk if node else None,
            "iommu_group": gpu.iommu_group,
            "model_id": model.pk,
            "companion_functions": list(gpu.companion_functions),
            "foreign_functions": list(gpu.foreign_functions),
        }
        where = f"node {node.index}" if node else "no NUMA node"
        row = existing.get(gpu.pci_address)
        if row is None:
            state, reason = _arrival_state(gpu)
            row = GpuDevice(host=host, pci_address=gpu.pci_address, state=state, state_reason=reason, **facts)
            row.full_clean(exclude=["host", "numa_node", "model"])
            row.save()
            report.changes.append(
                f"GPU {gpu.pci_address} ({model.short_name}, {where}): added, {_said(state, reason)}"
            )
            continue
        _update_known_gpu(row=row, gpu=gpu, facts=facts, report=report)
    for address, row in sorted(existing.items()):
        if address in seen or row.state == GpuDevice.State.REMOVED:
            continue
        if row.active:
            if row.missing_since is None:
                row.missing_since = now
                row.state_reason = (
                    f"{MISSING_REASON} {now:%Y-%m-%d %H:%M} UTC; still held by an active allocation"
                )
                row.save(update_fields=["missing_since", "state_reason"])
                report.changes.append(
                    f"GPU {address}: vanished while allocated; flagged, left with its guest"
                )
            continue
        # Free now; perhaps flagged earlier while a guest still held it.
        row.missing_since = row.missing_since or now
        row.state = GpuDevice.State.REMOVED
        row.state_reason = f"{MISSING_REASON} {row.missing_since:%Y-%m-%d %H:%M} UTC"
        row.save(update_fields=["missing_since", "state", "state_reason"])
        report.changes.append(f"GPU {address}: vanished while free; removed")


def _arrival_state(gpu: GpuDescription) -> tuple[str, str]:
    if gpu.foreign_functions:
        return GpuDevice.State.QUARANTINED, _shared_reason(gpu)
    return GpuDevice.State.AVAILABLE, ""


def _shared_reason(gpu: GpuDescription) -> str:
    return (
        f"{SHARED_GROUP_REASON} {gpu.iommu_group} also holds {', '.join(gpu.foreign_functions)}: "
        "the card cannot be passed through alone"
    )[:255]


def _said(state: str, reason: str) -> str:
    return f"{state} ({reason})" if reason else state


def _update_known_gpu(*, row: GpuDevice, gpu: GpuDescription, facts: dict, report: SyncReport) -> None:
    changed = []
    differs = {k: v for k, v in facts.items() if getattr(row, k) != v}
    for key, value in differs.items():
        setattr(row, key, value)
        changed.append(f"{key.removesuffix('_id')} -> {value}")
    if row.missing_since is not None:
        row.missing_since = None
        if row.state == GpuDevice.State.REMOVED:
            row.state, row.state_reason = _arrival_state(gpu)
            changed.append(f"back, {_said(row.state, row.state_reason)}")
        else:
            if row.state_reason.startswith(MISSING_REASON):
                row.state_reason = ""
            changed.append("found again")
    if gpu.foreign_functions and row.state == GpuDevice.State.AVAILABLE and not row.active:
        row.state, row.state_reason = GpuDevice.State.QUARANTINED, _shared_reason(gpu)
        changed.append(f"quarantined ({row.state_reason})")
    elif (
        not gpu.foreign_functions
        and row.state == GpuDevice.State.QUARANTINED
        and row.state_reason.startswith(SHARED_GROUP_REASON)
    ):
        row.state, row.state_reason = GpuDevice.State.AVAILABLE, ""
        changed.append("its IOMMU group is clean again; available")
    if changed:
        row.full_clean(exclude=["host", "numa_node", "model"])
        row.save()
        report.changes.append(f"GPU {row.pci_address}: {'; '.join(changed)}")


def _drop_vanished_nodes(*, host: Host, cells: tuple[NumaCellDescription, ...], report: SyncReport) -> None:
    described = {cell.index for cell in cells}
    for node in NumaNode.objects.filter(host=host).exclude(index__in=described):
        if node.allocations.exists() or node.cpus.exists():
            raise _fail(
                host,
                f"NUMA node {node.index} is no longer reported, but allocations still refer to it; "
                "release them (or fix the firmware setting) and sync again",
            )
        node.delete()
        report.changes.append(f"node {node.index}: vanished, deleted")
