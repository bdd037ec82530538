"""Lifecycle calls used by provisioning tasks. Each converges and says what it did.

Every call looks the domain up by UUID and moves it towards the asked-for state, so running it twice, or
in a fresh worker after a crash, gives the same result: the second call answers `Outcome.ALREADY`.
Every call checks `hypervisor.faults` first, and raises only HypervisorError subclasses.
"""

import dataclasses
import time
import xml.etree.ElementTree as ET
from enum import StrEnum
from typing import NamedTuple
from urllib.parse import urlsplit
from uuid import UUID

import libvirt

from hypervisor import faults
from hypervisor.connection import translated, uri_of
from hypervisor.domain_xml import METADATA_NS, build_domain_xml, spec_digest
from hypervisor.errors import PermanentHypervisorError, TransientHypervisorError, connection_lost
from hypervisor.faults import Step
from hypervisor.spec import DiskSpec, DomainSpec, seed_volume_prefix

SHUTDOWN_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.25

STATE_NAMES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "blocked",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutting down",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "suspended",
}
_OFF_STATES = (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED)


class Outcome(StrEnum):
    CREATED = "created"
    REDEFINED = "redefined"  # the XML changed; a running domain picks it up at its next start
    STARTED = "started"
    RESUMED = "resumed"
    SHUT_DOWN = "shut down"  # the guest answered the ACPI power button
    DESTROYED = "destroyed"  # it did not within the timeout, so it was powered off
    REMOVED = "removed"
    RESET = "reset"
    GROWN = "grown"  # the volume was resized to the larger capacity asked for
    COPIED = "copied"  # the volume was streamed to another host and the copy verified
    SIMULATED = "simulated"  # a test-driver host: no data to grow or copy; nothing real happened
    ALREADY = "already"  # nothing to do: already present, running, shut off or absent
    UNSUPPORTED = "unsupported"  # the driver cannot do it (libvirt's test driver cannot reset a device)


class ManagedDomain(NamedTuple):
    uuid: str
    instance_id: int
    state: str  # STATE_NAMES value: "running", "shut off", ...


class DomainPlacement(NamedTuple):
    """What a defined domain holds on its host, read back from its XML: to check it against its allocation."""

    vcpu_pins: dict[int, int]  # vCPU -> host CPU
    emulator_cpus: tuple[int, ...]
    pci_addresses: tuple[str, ...]  # every passed-through function, "0000:3b:00.0"
    memory_nodes: tuple[int, ...]  # host NUMA nodes the memory is bound to


def ensure_volume(conn: libvirt.virConnect, disk: DiskSpec) -> Outcome:
    """The instance's disk exists in the host's pool, as a copy-on-write overlay of its image volume."""
    uri = uri_of(conn)
    faults.check(Step.VOLUME, uri)
    with translated(uri=uri, step=Step.VOLUME):
        pool = _pool(conn, disk.pool, uri=uri)
        if _volume(pool, disk.volume) is not None:
            return Outcome.ALREADY
        backing = None
        if disk.backing_volume is not None:
            backing = _volume(pool, disk.backing_volume)
            if backing is None:
                pool.refresh(0)  # images are copied in behind libvirt's back; look again before giving up
                backing = _volume(pool, disk.backing_volume)
            if backing is None:
                raise PermanentHypervisorError(
                    f"image volume {disk.backing_volume!r} is not in storage pool {disk.pool!r}",
                    uri=uri,
                    step=str(Step.VOLUME),
                )
        pool.createXML(_volume_xml(disk, backing), 0)
    return Outcome.CREATED


def ensure_defined(conn: libvirt.virConnect, spec: DomainSpec) -> Outcome:
    """The domain is defined with the XML built from `spec`: defined if missing, redefined if it changed.
    A spec without a domain type gets the host's preferred one (`preferred_domain_type`), asked on the
    same connection: no call of its own from the worker."""
    uri = uri_of(conn)
    if not spec.domain_type:
        spec = dataclasses.replace(spec, domain_type=preferred_domain_type(conn))
    xml = build_domain_xml(spec)
    faults.check(Step.DEFINE, uri)
    with translated(uri=uri, step=Step.DEFINE):
        domain = _lookup(conn, spec.uuid)
        if domain is None:
            conn.defineXML(xml)
            return Outcome.CREATED
        if _defined_digest(domain) == spec_digest(xml):
            return Outcome.ALREADY
        conn.defineXML(xml)
    return Outcome.REDEFINED


def ensure_running(conn: libvirt.virConnect, uuid: str | UUID) -> Outcome:
    uri = uri_of(conn)
    faults.check(Step.START, uri)
    with translated(uri=uri, step=Step.START):
        domain = _require(conn, uuid, uri=uri, step=Step.START)
        state = domain.state()[0]
        if state == libvirt.VIR_DOMAIN_RUNNING:
            return Outcome.ALREADY
        if state == libvirt.VIR_DOMAIN_PAUSED:
            domain.resume()
            return Outcome.RESUMED
        if state == libvirt.VIR_DOMAIN_PMSUSPENDED:  # the guest suspended itself; resume() cannot wake it
            domain.pMWakeup(0)
            return Outcome.RESUMED
        if state == libvirt.VIR_DOMAIN_SHUTDOWN:
            raise TransientHypervisorError(
                f"domain {uuid} is shutting down; start it once it is off", uri=uri, step=str(Step.START)
            )
        try:
            domain.create()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID and domain.isActive():
                return Outcome.ALREADY  # someone else started it between our look and our start
            raise
    return Outcome.STARTED


def ensure_shut_off(
    conn: libvirt.virConnect,
    uuid: str | UUID,
    *,
    timeout: float = SHUTDOWN_TIMEOUT_SECONDS,
    poll: float = POLL_SECONDS,
) -> Outcome:
    """Press the ACPI power button, wait up to `timeout` seconds, then pull the plug. Absent counts as off."""
    uri = uri_of(conn)
    faults.check(Step.SHUTDOWN, uri)
    with translated(uri=uri, step=Step.SHUTDOWN):
        domain = _lookup(conn, uuid)
        if domain is None or domain.state()[0] in _OFF_STATES:
            return Outcome.ALREADY
        if domain.state()[0] != libvirt.VIR_DOMAIN_PAUSED:  # a paused guest cannot see the button
            _ignore_not_running(lambda: _press_power_button(domain))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not domain.isActive():
                    return Outcome.SHUT_DOWN
                time.sleep(poll)
        if not _ignore_not_running(domain.destroy):
            return Outcome.SHUT_DOWN
    return Outcome.DESTROYED


def ensure_absent(
    conn: libvirt.virConnect,
    uuid: str | UUID,
    *,
    disk: DiskSpec | None = None,
    seeds_of: int | None = None,
) -> Outcome:
    """Power off, undefine (with UEFI variables), delete the disk volume and, with `seeds_of` (an instance
    id), every NoCloud seed volume of that instance in the disk's pool. Each part skips what is gone."""
    uri = uri_of(conn)
    faults.check(Step.UNDEFINE, uri)
    removed = False
    with translated(uri=uri, step=Step.UNDEFINE):
        domain = _lookup(conn, uuid)
        if domain is not None:
            if domain.isActive():
                _ignore_not_running(domain.destroy)
            _undefine(domain)
            removed = True
        if disk is not None:
            pool = _pool(conn, disk.pool, uri=uri, required=False)
            volume = _volume(pool, disk.volume) if pool is not None else None
            if volume is not None:
                volume.delete(0)
                removed = True
            if pool is not None and seeds_of is not None:
                removed = _remove_seeds(pool, seeds_of) or removed
    return Outcome.REMOVED if removed else Outcome.ALREADY


def _remove_seeds(pool: libvirt.virStoragePool, instance_id: int) -> bool:
    prefix = seed_volume_prefix(instance_id)
    removed = False
    for volume in pool.listAllVolumes(0):
        if volume.name().startswith(prefix):
            volume.delete(0)
            removed = True
    return removed


def list_managed_domains(conn: libvirt.virConnect) -> list[ManagedDomain]:
    """Every domain on the host that carries gpuadmin metadata, for reconcile. Others are not ours."""
    uri = uri_of(conn)
    faults.check(Step.LIST, uri)
    managed = []
    with translated(uri=uri, step=Step.LIST):
        for domain in conn.listAllDomains(0):
            try:
                metadata = domain.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, 0)
                state = domain.state()[0]
            except libvirt.libvirtError as exc:
                if exc.get_error_code() in (libvirt.VIR_ERR_NO_DOMAIN_METADATA, libvirt.VIR_ERR_NO_DOMAIN):
                    continue  # not ours, or undefined while we listed
                raise
            instance_id = _instance_id(metadata)
            if instance_id is not None:
                managed.append(
                    ManagedDomain(domain.UUIDString(), instance_id, STATE_NAMES.get(state, "unknown"))
                )
    return sorted(managed, key=lambda d: d.instance_id)


def reset_pci_device(conn: libvirt.virConnect, address: str) -> Outcome:
    """Reset a PCI function (virNodeDeviceReset): GPU hygiene between two tenants."""
    uri = uri_of(conn)
    faults.check(Step.RESET, uri)
    name = "pci_" + address.replace(":", "_").replace(".", "_")
    with translated(uri=uri, step=Step.RESET):
        try:
            device = conn.nodeDeviceLookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_NODE_DEVICE:
                raise PermanentHypervisorError(
                    f"no PCI device {address} on the host",
                    uri=uri,
                    code=exc.get_error_code(),
                    step=str(Step.RESET),
                ) from exc
            raise
        try:
            device.reset()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
                return Outcome.UNSUPPORTED
            raise
    return Outcome.RESET


def preferred_domain_type(conn: libvirt.virConnect) -> str:
    """ "kvm" where the host's QEMU can use KVM, else "qemu" (TCG: slow, but it runs anywhere)."""
    uri = uri_of(conn)
    if urlsplit(uri).scheme == "test":
        return "kvm"
    try:
        conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
    except libvirt.libvirtError as exc:
        if connection_lost(exc):  # the host did not answer: that says nothing about its KVM
            with translated(uri=uri):
                raise
        return "qemu"
    return "kvm"


def domain_state(conn: libvirt.virConnect, uuid: str | UUID) -> str | None:
    """The domain's state name ("running", "shut off", ...), or None when it is not defined."""
    uri = uri_of(conn)
    with translated(uri=uri):
        domain = _lookup(conn, uuid)
        return STATE_NAMES.get(domain.state()[0], "unknown") if domain is not None else None


def domain_placement(conn: libvirt.virConnect, uuid: str | UUID) -> DomainPlacement | None:
    """The CPUs, PCI functions and NUMA nodes the domain's definition holds; None when it is not defined."""
    uri = uri_of(conn)
    with translated(uri=uri):
        domain = _lookup(conn, uuid)
        if domain is None:
            return None
        root = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    pins = {int(pin.get("vcpu")): int(pin.get("cpuset")) for pin in root.findall("cputune/vcpupin")}
    emulator = root.find("cputune/emulatorpin")
    addresses = []
    for address in root.findall("devices/hostdev[@type='pci']/source/address"):
        numbers = [int(address.get(part), 16) for part in ("domain", "bus", "slot", "function")]
        addresses.append("{:04x}:{:02x}:{:02x}.{:x}".format(*numbers))
    nodes = {n for memnode in root.findall("numatune/memnode") for n in _cpu_list(memnode.get("nodeset", ""))}
    return DomainPlacement(
        vcpu_pins=pins,
        emulator_cpus=tuple(_cpu_list(emulator.get("cpuset", ""))) if emulator is not None else (),
        pci_addresses=tuple(sorted(addresses)),
        memory_nodes=tuple(sorted(nodes)),
    )


def _cpu_list(text: str) -> list[int]:
    """libvirt's cpuset syntax ("0,48" or "2-5"), exclusions aside (the builder writes none)."""
    numbers = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        numbers += range(int(first), int(last or first) + 1)
    return numbers


def _lookup(conn: libvirt.virConnect, uuid: str | UUID) -> libvirt.virDomain | None:
    try:
        return conn.lookupByUUIDString(str(uuid))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def _require(conn: libvirt.virConnect, uuid: str | UUID, *, uri: str, step: Step) -> libvirt.virDomain:
    domain = _lookup(conn, uuid)
    if domain is None:
        raise PermanentHypervisorError(
            f"domain {uuid} is not defined; define it first",
            uri=uri,
            code=libvirt.VIR_ERR_NO_DOMAIN,
            step=str(step),
        )
    return domain


def _defined_digest(domain: libvirt.virDomain) -> str | None:
    try:
        metadata = domain.metadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG
        )
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
            return None
        raise
    return spec_digest(metadata)


def _instance_id(metadata: str) -> int | None:
    try:
        return int(ET.fromstring(metadata).get("id", ""))
    except (ET.ParseError, ValueError):
        return None


def _ignore_not_running(call) -> bool:
    """Run a power call; False when the domain had already stopped (another worker got there first)."""
    try:
        call()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
            return False
        raise
    return True


def _press_power_button(domain: libvirt.virDomain) -> None:
    try:
        domain.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
    except libvirt.libvirtError as exc:
        # libvirt's test driver knows no shutdown methods; its plain shutdown is immediate.
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        domain.shutdown()


def _undefine(domain: libvirt.virDomain) -> None:
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    )
    try:
        domain.undefineFlags(flags)
    except libvirt.libvirtError as exc:
        # libvirt's test driver rejects these flags; it keeps no NVRAM, snapshots or saved state anyway.
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise
        domain.undefine()


def _pool(
    conn: libvirt.virConnect, name: str, *, uri: str, required: bool = True
) -> libvirt.virStoragePool | None:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise
        if not required:
            return None
        raise PermanentHypervisorError(
            f"storage pool {name!r} does not exist", uri=uri, code=exc.get_error_code(), step=str(Step.VOLUME)
        ) from exc
    if required and not pool.isActive():
        raise PermanentHypervisorError(f"storage pool {name!r} is not active", uri=uri, step=str(Step.VOLUME))
    return pool


def _volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise


def _volume_xml(disk: DiskSpec, backing: libvirt.virStorageVol | None) -> str:
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = disk.volume
    ET.SubElement(volume, "capacity", unit="MiB").text = str(disk.capacity_mib)
    # A qcow2 overlay starts empty and grows; libvirt checks the pool's free space against this.
    ET.SubElement(volume, "allocation", unit="MiB").text = "0"
    ET.SubElement(ET.SubElement(volume, "target"), "format", type="qcow2")
    if backing is not None:
        backing_format = ET.fromstring(backing.XMLDesc(0)).find("./target/format")
        store = ET.SubElement(volume, "backingStore")
        # Named relative to the overlay's own directory (qcow2 allows it), not by the absolute path: a copy
        # of the overlay in another host's pool then finds that pool's copy of the image.
        ET.SubElement(store, "path").text = backing.name()
        fmt = backing_format.get("type") if backing_format is not None else "raw"
        ET.SubElement(store, "format", type=fmt)
    return ET.tostring(volume, encoding="unicode")


__all__ = [
    "DomainPlacement",
    "ManagedDomain",
    "Outcome",
    "domain_placement",
    "domain_state",
    "ensure_absent",
    "ensure_defined",
    "ensure_running",
    "ensure_shut_off",
    "ensure_volume",
    "list_managed_domains",
    "preferred_domain_type",
    "reset_pci_device",
]
