"""Describe a host from libvirt: NUMA topology from its capabilities, GPUs from its PCI node devices.

Real hosts answer `getCapabilities()`. libvirt's test driver (9.0) reports no NUMA cells for a custom
node file, so a test-driver host reads its topology from the `capabilities.xml` that sits beside its
node file (every profile in hypervisor/profiles ships one); its PCI devices still come from libvirt.
"""

from pathlib import Path
from urllib.parse import unquote, urlsplit

import libvirt

from hypervisor import faults
from hypervisor.capabilities import PAGE_1G_KIB, parse_capabilities
from hypervisor.connection import translated, uri_of
from hypervisor.description import HostDescription
from hypervisor.errors import DiscoveryError
from hypervisor.faults import Step
from hypervisor.nodedev import gpus_from, parse_pci_device
from hypervisor.routing import on_host

CAPABILITIES_FILE = "capabilities.xml"


def capabilities_path(uri: str) -> Path | None:
    """Where a test-driver host's capabilities live; None for drivers that report their own."""
    parts = urlsplit(uri)
    if parts.scheme != "test":
        return None
    if parts.path in ("", "/default"):
        return None
    return Path(unquote(parts.path)).with_name(CAPABILITIES_FILE)


def is_discoverable(uri: str) -> bool:
    """False for test-driver hosts with no hardware to read (test:///default, synthetic hosts)."""
    if urlsplit(uri).scheme != "test":
        return True
    path = capabilities_path(uri)
    return path is not None and path.is_file()


def discover(uri: str, *, hostname: str) -> HostDescription:
    """Describe the host at `uri` over a pooled connection (in the hypervisor service if simulated)."""
    return on_host(uri, describe_host, hostname=hostname)


def describe_host(conn: libvirt.virConnect, *, hostname: str) -> HostDescription:
    uri = uri_of(conn)
    faults.check(Step.DISCOVER, uri)
    if not is_discoverable(uri):
        raise DiscoveryError(
            "this test-driver URI has no capabilities.xml beside its node file, so there is no hardware "
            "to discover (libvirt's test driver reports no NUMA cells itself); use a host profile URI, "
            "see hypervisor/profiles",
            uri=uri,
            step=str(Step.DISCOVER),
        )
    path = capabilities_path(uri)
    with translated(uri=uri, step=Step.DISCOVER):
        if path is not None:
            capabilities, free_pages = _read_file(path, uri=uri), None
        else:
            capabilities = conn.getCapabilities()
            free_pages = _free_pages(conn, capabilities.count("<cell id="))
        devices = [
            d.XMLDesc() for d in conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV)
        ]
    cells = parse_capabilities(capabilities, uri=uri, free_pages=free_pages)
    functions = [f for f in (parse_pci_device(xml, uri=uri) for xml in devices) if f is not None]
    return HostDescription(hostname=hostname, cells=cells, gpus=gpus_from(functions))


def _read_file(path: Path, *, uri: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise DiscoveryError(f"cannot read {path}: {exc.strerror}", uri=uri) from exc


def _free_pages(conn: libvirt.virConnect, cells: int) -> dict[int, dict[int, int]] | None:
    if cells == 0:
        return None
    try:
        return conn.getFreePages([2048, PAGE_1G_KIB], 0, cells)
    except libvirt.libvirtError:
        return None  # older or restricted drivers: count every configured page as free
