import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.services import audit_record
from hypervisor.connection import is_test_driver
from hypervisor.description import HostDescription
from inventory.counters import gpu_set_state, numa_counters_recount
from inventory.exceptions import GpuBusy, HostBusy, InvalidStateChange
from inventory.models import CapacitySample, GpuDevice, GpuModel, Host, HostCpu, NumaNode, Region
from inventory.selectors import region_capacity

logger = logging.getLogger(__name__)


class UnknownGpuModel(Exception):
    """A host reports a GPU whose vendor/product pair is not a GpuModel yet."""


def reserved_cpu_ids(*, description: HostDescription, cores_per_node: int) -> set[int]:
    """The host keeps the first `cores_per_node` cores of each node (both threads of each)."""
    reserved: set[int] = set()
    for cell in description.cells:
        cores = sorted({cpu.siblings for cpu in cell.cpus}, key=min)
        for siblings in cores[:cores_per_node]:
            reserved.update(siblings)
    return reserved


def host_create(
    *,
    region: Region,
    hostname: str,
    libvirt_uri: str,
    kind: str,
    description: HostDescription,
    profile: str = "",
    simulated: bool | None = None,
) -> Host:
    """Record a new host and its topology in one transaction.

    A test-driver host is simulated unless the caller says otherwise (tests of the real-host paths do).
    """
    if simulated is None:
        simulated = is_test_driver(libvirt_uri)
    with transaction.atomic():
        host = Host(
            region=region,
            hostname=hostname,
            libvirt_uri=libvirt_uri,
            kind=kind,
            profile=profile,
            simulated=simulated,
        )
        host.full_clean()
        host.save()
        host_record_topology(host=host, description=description)
    return host


def host_record_topology(*, host: Host, description: HostDescription) -> None:
    """Write NUMA nodes, CPUs and GPUs of a host that has none yet."""
    reserved_cores = settings.GPUADMIN_RESERVED_CORES_PER_NODE
    reserved_memory = settings.GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE
    reserved = reserved_cpu_ids(description=description, cores_per_node=reserved_cores)
    models_by_id = {(m.vendor_id, m.product_id): m for m in GpuModel.objects.all()}
    with transaction.atomic():
        nodes: dict[int, NumaNode] = {}
        for cell in description.cells:
            node = NumaNode(
                host=host,
                index=cell.index,
                memory_mib=cell.memory_mib,
                reserved_memory_mib=min(reserved_memory, cell.memory_mib),
                hugepages_1g_total=cell.hugepages_1g_total,
            )
            node.full_clean()
            node.save()
            nodes[cell.index] = node
            cpus = [
                HostCpu(
                    host=host,
                    numa_node=node,
                    cpu_id=cpu.cpu_id,
                    core_id=cpu.core_id,
                    socket_id=cpu.socket_id,
                    siblings=list(cpu.siblings),
                    reserved=cpu.cpu_id in reserved,
                )
                for cpu in cell.cpus
            ]
            HostCpu.objects.bulk_create(cpus)
        gpus = []
        for gpu in description.gpus:
            model = models_by_id.get((gpu.vendor_id, gpu.product_id))
            if model is None:
                raise UnknownGpuModel(
                    f"{host.hostname}: GPU {gpu.pci_address} is {gpu.vendor_id:04x}:{gpu.product_id:04x} "
                    f"({gpu.product_name}), which is not a known GPU model; add it first."
                )
            device = GpuDevice(
                host=host,
                numa_node=nodes.get(gpu.numa_node) if gpu.numa_node is not None else None,
                pci_address=gpu.pci_address,
                iommu_group=gpu.iommu_group,
                model=model,
                companion_functions=list(gpu.companion_functions),
                foreign_functions=list(gpu.foreign_functions),
            )
            device.full_clean(exclude=["host", "numa_node", "model"])
            gpus.append(device)
        GpuDevice.objects.bulk_create(gpus)
        numa_counters_recount(host=host)


def host_set_state(*, host: Host, state: str, actor: AbstractBaseUser | None, reason: str = "") -> Host:
    """Enable, drain, put in maintenance or disable a host. Guests already there keep running.

    Claims only pick enabled hosts and re-check the state under the host lock, so taking the same lock
    here means no claim still in flight can land on the host once this commits.
    """
    if state not in Host.State.values:
        raise InvalidStateChange(
            f"{state!r} is not a host state; choose one of {', '.join(Host.State.values)}."
        )
    reason = reason.strip()
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)
        previous = host.state
        host.state = state
        host.state_reason = "" if state == Host.State.ENABLED else reason
        host.full_clean()
        host.save(update_fields=["state", "state_reason"])
        audit_record(
            actor=actor,
            action=f"host.{state}",
            target=host,
            detail=f"{previous} -> {state}" + (f": {reason}" if host.state_reason else ""),
        )
    return host


# What a host's guests depend on: where it is sold (region, kind), how it is reached (URI), what it is
# (profile), where its volumes live (pool) and their network (bridge). They change only while no
# allocation is held there.
HOST_PLACEMENT_FIELDS = ("region", "kind", "libvirt_uri", "profile", "storage_pool", "bridge")


def host_active_allocations(*, host: Host) -> int:
    return host.allocations.filter(released_at__isnull=True).count()


def host_change_problem(*, host: Host, changes: dict) -> str | None:
    """Why `host_change` would refuse these changes now, or None (for a form to show before saving)."""
    changed = sorted(name for name, value in changes.items() if _differs(host, name, value))
    if not changed:
        return None
    if "libvirt_uri" in changed and is_test_driver(changes["libvirt_uri"]) != is_test_driver(
        host.libvirt_uri
    ):
        return (
            f"{host} would move between libvirt's test driver and a real one: enroll it again instead "
            "(manage.py enroll_host), so its cards are reset as a real host's are."
        )
    held = host_active_allocations(host=host)
    if held:
        return (
            f"{host} holds {held} active allocation(s): its {', '.join(changed)} cannot change under them. "
            "Drain it and move or delete its instances first."
        )
    return None


def _differs(host: Host, name: str, value) -> bool:
    current = host.region_id if name == "region" else getattr(host, name)
    wanted = value.pk if name == "region" and isinstance(value, Region) else value
    return current != wanted


def host_change(*, host: Host, actor: AbstractBaseUser | None, **changes) -> Host:
    """Change a host's region, kind, libvirt URI, profile or storage pool. Refused while it holds any
    allocation (HostBusy); bumps the generation and recounts its nodes, so a claim that read the host
    before sees it changed."""
    unknown = set(changes) - set(HOST_PLACEMENT_FIELDS)
    if unknown:
        raise InvalidStateChange(f"host_change cannot change {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        host = Host.objects.select_for_update().get(pk=host.pk)  # as claims lock it: none lands meanwhile
        changed = {name: value for name, value in changes.items() if _differs(host, name, value)}
        if not changed:
            return host
        problem = host_change_problem(host=host, changes=changed)
        if problem:
            raise HostBusy(problem)
        before = {name: str(getattr(host, name)) for name in changed}
        for name, value in changed.items():
            setattr(host, name, value)
        host.full_clean()
        host.save(update_fields=list(changed))
        Host.objects.filter(pk=host.pk).update(generation=F("generation") + 1)
        numa_counters_recount(host=host)
        host.refresh_from_db()
        audit_record(
            actor=actor,
            action="host.change",
            target=host,
            detail="; ".join(f"{name} {before[name]} -> {getattr(host, name)}" for name in sorted(changed)),
        )
    return host


def host_record_libvirt_error(*, host_id: int, error: str) -> None:
    """Count a libvirt error on a host. One UPDATE, no lock: an error path must not wait on a claim's lock
    for a statistic, and losing a count to a database that is down too is better than a second error."""
    try:
        with transaction.atomic():  # a savepoint when nested: a failure here leaves the caller's intact
            Host.objects.filter(pk=host_id).update(
                libvirt_errors=F("libvirt_errors") + 1,
                last_libvirt_error=error[:500],
                last_libvirt_error_at=timezone.now(),
            )
    except DatabaseError:
        logger.warning("could not count a libvirt error of host %s: %s", host_id, error, exc_info=True)


def gpu_holder_id(*, gpu: GpuDevice) -> int | None:
    """The id of the instance whose active allocation holds the card, or None."""
    return (
        gpu.allocations.filter(released_at__isnull=True)
        .values_list("allocation__instance_id", flat=True)
        .first()
    )


def _gpu_locked_unheld(*, gpu: GpuDevice, if_removed: str) -> GpuDevice:
    """The card as it is now, inside the caller's transaction, for a change of its state by hand. The host
    lock first, as claims take it: no claim can pick the card between the check and the write. A removed
    card (`if_removed` says how) and a card a guest holds are refused."""
    Host.objects.select_for_update().filter(pk=gpu.host_id).first()
    gpu = GpuDevice.objects.select_related("host").get(pk=gpu.pk)
    if gpu.state == GpuDevice.State.REMOVED:
        raise InvalidStateChange(f"{gpu.pci_address} on {gpu.host} {if_removed}")
    holder = gpu_holder_id(gpu=gpu)
    if holder is not None:
        raise GpuBusy(f"{gpu.pci_address} on {gpu.host} is in use by instance {holder}")
    return gpu


def gpu_mark_faulty(*, gpu: GpuDevice, reason: str, actor: AbstractBaseUser | None) -> GpuDevice:
    """Take a card out of service with the reason. A card a guest holds is refused: move the guest first."""
    reason = reason.strip()
    if not reason:
        raise InvalidStateChange(
            "Say why the card is faulty: the reason is kept on the card and in the audit log."
        )
    with transaction.atomic():
        gpu = _gpu_locked_unheld(gpu=gpu, if_removed="is removed (missing from the host).")
        gpu = gpu_set_state(gpu=gpu, state=GpuDevice.State.FAULTY, reason=reason[:255])
        audit_record(actor=actor, action="gpu.faulty", target=gpu, detail=reason)
    return gpu


def gpu_retire(*, gpu: GpuDevice, reason: str, actor: AbstractBaseUser | None) -> GpuDevice:
    """Take a card out of the fleet for good (pulled, sent back): it becomes `removed` with the reason and
    is never sold again; its row and holder history stay. A card an instance holds is refused. A host
    sync leaves a retired card alone; only a card that went missing and comes back returns by itself."""
    reason = reason.strip()
    if not reason:
        raise InvalidStateChange(
            "Say why the card is retired: the reason is kept on the card and in the audit log."
        )
    with transaction.atomic():
        gpu = _gpu_locked_unheld(gpu=gpu, if_removed="is already removed.")
        previous = gpu.state
        gpu = gpu_set_state(gpu=gpu, state=GpuDevice.State.REMOVED, reason=f"retired: {reason}"[:255])
        GpuDevice.objects.filter(pk=gpu.pk).update(reset_lease_expires_at=None)
        audit_record(actor=actor, action="gpu.retire", target=gpu, detail=f"{reason} (was {previous})")
    return gpu


# Cards in these states wait for a person; `cleaning` returns by itself and `removed` needs a host sync.
RETURNABLE_GPU_STATES = (GpuDevice.State.FAULTY, GpuDevice.State.QUARANTINED, GpuDevice.State.RESERVED)


def gpu_return_to_service(*, gpu: GpuDevice, actor: AbstractBaseUser | None) -> GpuDevice:
    """Make a faulty, quarantined or reserved card available again (the person vouches for it)."""
    with transaction.atomic():
        Host.objects.select_for_update().filter(pk=gpu.host_id).first()
        gpu = GpuDevice.objects.select_related("host").get(pk=gpu.pk)
        if gpu.state not in RETURNABLE_GPU_STATES:
            why = {
                GpuDevice.State.AVAILABLE: "is already in service",
                GpuDevice.State.CLEANING: "is being reset after its last guest; it returns by itself",
                GpuDevice.State.REMOVED: "is missing from the host; sync the host once the card is back",
            }.get(gpu.state, f"is {gpu.state}")
            raise InvalidStateChange(f"{gpu.pci_address} on {gpu.host} {why}.")
        previous, previous_reason = gpu.state, gpu.state_reason
        gpu = gpu_set_state(gpu=gpu, state=GpuDevice.State.AVAILABLE, reason="")
        audit_record(
            actor=actor,
            action="gpu.return_to_service",
            target=gpu,
            detail=f"was {previous}" + (f": {previous_reason}" if previous_reason else ""),
        )
    return gpu


# A card waits in these states for a confirmed reset; staff who cleaned it by hand say so.
HYGIENE_GPU_STATES = (GpuDevice.State.CLEANING, GpuDevice.State.QUARANTINED)


def gpu_mark_cleaned(*, gpu: GpuDevice, note: str, actor: AbstractBaseUser | None) -> GpuDevice:
    """Put a card that waits for a reset (cleaning, or quarantined after one failed) back on sale: a person
    confirms it is clean and says how. Refused for a card an instance holds."""
    note = note.strip()
    if not note:
        raise InvalidStateChange(
            "Say how the card was cleaned (e.g. host power-cycled): it is kept in the audit log."
        )
    with transaction.atomic():
        Host.objects.select_for_update().filter(pk=gpu.host_id).first()
        gpu = GpuDevice.objects.select_related("host").get(pk=gpu.pk)
        holder = gpu_holder_id(gpu=gpu)
        if holder is not None:
            raise GpuBusy(f"{gpu.pci_address} on {gpu.host} is in use by instance {holder}")
        if gpu.state not in HYGIENE_GPU_STATES:
            raise InvalidStateChange(
                f"{gpu.pci_address} on {gpu.host} is {gpu.state}: only a card that is cleaning or "
                "quarantined can be marked cleaned."
            )
        previous, previous_reason = gpu.state, gpu.state_reason
        gpu = gpu_set_state(gpu=gpu, state=GpuDevice.State.AVAILABLE, reason="")
        # A worker still resetting it finds it no longer cleaning and leaves it alone.
        GpuDevice.objects.filter(pk=gpu.pk).update(reset_lease_expires_at=None)
        audit_record(
            actor=actor,
            action="gpu.cleaned",
            target=gpu,
            detail=f"{note} (was {previous}" + (f": {previous_reason})" if previous_reason else ")"),
        )
    return gpu


# Capacity history: a sample per region and GPU model every SAMPLE_MINUTES, thinned with age so a series
# holds a bounded number of points (about 550: 192 + 144 + 108 + slack) however long it runs.
SAMPLE_MINUTES = 15
# (samples older than this, keep one per this): every slot for two days, hourly to eight, six-hourly after.
THINNING = ((timedelta(days=2), timedelta(hours=1)), (timedelta(days=8), timedelta(hours=6)))
RETENTION = timedelta(days=35)  # the 30-day chart, and a few days to spare


def sample_slot(moment: datetime) -> datetime:
    """The start of the 15-minute slot `moment` falls in."""
    return moment.replace(minute=moment.minute - moment.minute % SAMPLE_MINUTES, second=0, microsecond=0)


def capacity_sample_record(*, now: datetime | None = None) -> list[CapacitySample]:
    """Record region_capacity's numbers per region and GPU model for the current slot, then thin the old.

    Running it twice in one slot rewrites that slot's rows with the numbers of the second run.
    """
    slot = sample_slot(now or timezone.now())
    summaries = [s for s in region_capacity(with_hosts=False) if s.kind == Host.Kind.GPU and s.gpu_model_name]
    model_ids = dict(GpuModel.objects.values_list("name", "id"))
    samples = []
    with transaction.atomic():
        for summary in summaries:
            counts = summary.gpus
            sample = CapacitySample.objects.filter(
                region_id=summary.region, gpu_model_id=model_ids[summary.gpu_model_name], recorded_at=slot
            ).first() or CapacitySample(
                region_id=summary.region, gpu_model_id=model_ids[summary.gpu_model_name], recorded_at=slot
            )
            sample.hosts, sample.hosts_enabled = summary.hosts, summary.hosts_enabled
            for name in CAPACITY_SAMPLE_COUNTS:
                setattr(sample, name, getattr(counts, name))
            sample.sellable = {p.plan: p.sellable for p in summary.sellable if p.gpus}
            sample.full_clean()
            sample.save()
            samples.append(sample)
        capacity_samples_thin(now=slot)
    return samples


CAPACITY_SAMPLE_COUNTS = (
    "total",
    "allocated",
    "free",
    "stranded",
    "cleaning",
    "quarantined",
    "faulty",
    "reserved",
    "removed",
    "host_out_of_service",
    "unplaceable",
)


def capacity_samples_thin(*, now: datetime) -> int:
    """Delete samples past RETENTION, and past each THINNING age every sample that shares its period
    (an hour, six hours: aligned to the epoch) with an older sample that is kept, per region and model.
    Returns how many rows went. Only rows older than the first THINNING age are read."""
    with transaction.atomic():
        deleted, _ = CapacitySample.objects.filter(recorded_at__lt=now - RETENTION).delete()
        rows = CapacitySample.objects.filter(recorded_at__lt=now - THINNING[0][0]).values_list(
            "id", "region_id", "gpu_model_id", "recorded_at"
        )
        last_kept: dict[tuple, float] = {}
        doomed = []
        for pk, region_id, model_id, recorded_at in rows.order_by("recorded_at", "id"):
            seconds = recorded_at.timestamp()
            period = _thinning_period(now - recorded_at).total_seconds()
            period_start = seconds - seconds % period
            if last_kept.get((region_id, model_id), float("-inf")) >= period_start:
                doomed.append(pk)
            else:
                last_kept[(region_id, model_id)] = seconds
        if doomed:
            deleted += CapacitySample.objects.filter(pk__in=doomed).delete()[0]
    return deleted


def _thinning_period(age: timedelta) -> timedelta:
    period = timedelta(minutes=SAMPLE_MINUTES)
    for older_than, keep_one_per in THINNING:
        if age >= older_than:
            period = keep_one_per
    return period
