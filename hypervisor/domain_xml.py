"""The domain XML builder: a pure function from a DomainSpec to libvirt domain XML (DESIGN.md section 4)."""

import hashlib
import xml.etree.ElementTree as ET

from hypervisor.spec import DOMAIN_TYPES, DomainSpec, GpuPassthrough
from hypervisor.xmlutil import format_cpuset

METADATA_NS = "https://gpuadmin.dev/xmlns/instance/1"
METADATA_PREFIX = "gpuadmin"
ET.register_namespace(METADATA_PREFIX, METADATA_NS)

# Each guest cell's PCIe expander bus owns the bus numbers from its busNr up to the next one's; the root
# bus keeps everything below the first. 32 numbers leave room for a root port per card and then some.
BUS_NUMBERS_PER_CELL = 32
CLEAN_TRAFFIC = "clean-traffic"  # libvirt ships this nwfilter; hosts need nothing more

# QEMU's own 64-bit PCI hole on q35 (32 GiB): never ask for less than it would give anyway.
QEMU_DEFAULT_PCI_HOLE64_MIB = 32 * 1024


class DomainSpecError(ValueError):
    """The spec cannot describe a guest (a programming error upstream, not a libvirt failure)."""


def build_domain_xml(spec: DomainSpec) -> str:
    """The domain XML for `spec`, with a digest of itself in <metadata> so redefinitions can be skipped."""
    _check(spec)
    domain = _domain(spec, digest="")
    digest = "sha256:" + hashlib.sha256(_serialize(domain).encode()).hexdigest()
    domain.find(f"metadata/{{{METADATA_NS}}}instance").set("spec", digest)
    return _serialize(domain)


def spec_digest(xml: str) -> str | None:
    """The digest build_domain_xml wrote into a domain's XML (or its metadata element), if any."""
    root = ET.fromstring(xml)
    # virDomainGetMetadata answers with the bare element, its namespace dropped.
    if root.tag in ("instance", f"{{{METADATA_NS}}}instance"):
        return root.get("spec")
    element = root.find(f"./metadata/{{{METADATA_NS}}}instance")
    return element.get("spec") if element is not None else None


def _serialize(domain: ET.Element) -> str:
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode") + "\n"


def _check(spec: DomainSpec) -> None:
    if spec.domain_type not in DOMAIN_TYPES:
        raise DomainSpecError(f"domain type {spec.domain_type!r} is not one of {DOMAIN_TYPES}")
    if not spec.cells:
        raise DomainSpecError(f"{spec.name}: no guest NUMA cell")
    vcpus = sorted(pin.vcpu for cell in spec.cells for pin in cell.vcpus)
    if vcpus != list(range(len(vcpus))) or not vcpus:
        raise DomainSpecError(f"{spec.name}: vCPUs must be numbered 0..n-1 once each, got {vcpus}")
    hosts = [pin.host_cpu for cell in spec.cells for pin in cell.vcpus]
    if len(set(hosts)) != len(hosts):
        raise DomainSpecError(f"{spec.name}: two vCPUs pinned to the same host CPU ({sorted(hosts)})")
    if set(hosts) & set(spec.emulator_cpus):
        raise DomainSpecError(f"{spec.name}: emulator CPUs {spec.emulator_cpus} overlap vCPU pins")
    if len(set(spec.host_nodes)) != len(spec.cells):
        raise DomainSpecError(f"{spec.name}: two guest cells on one host node {spec.host_nodes}")
    for index, cell in enumerate(spec.cells):
        if cell.memory_mib <= 0 or not cell.vcpus:
            raise DomainSpecError(f"{spec.name}: guest cell {index} needs vCPUs and memory")
        if len(cell.vcpus) % spec.threads_per_core:
            raise DomainSpecError(
                f"{spec.name}: guest cell {index} has {len(cell.vcpus)} vCPUs, not whole "
                f"{spec.threads_per_core}-thread cores"
            )
        if spec.hugepages_1g and cell.memory_mib % 1024:
            raise DomainSpecError(f"{spec.name}: guest cell {index} memory is not whole 1 GiB pages")
    for gpu in spec.gpus:
        if not gpu.functions:
            raise DomainSpecError(f"{spec.name}: a GPU with no PCI function")
        if gpu.guest_cell is not None and not 0 <= gpu.guest_cell < len(spec.cells):
            raise DomainSpecError(
                f"{spec.name}: GPU {gpu.functions[0]} is behind guest cell {gpu.guest_cell}"
            )
    functions = [f for gpu in spec.gpus for f in gpu.functions]
    if len(set(functions)) != len(functions):
        raise DomainSpecError(f"{spec.name}: a PCI function is passed through twice")


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _domain(spec: DomainSpec, *, digest: str) -> ET.Element:
    domain = ET.Element("domain", type=spec.domain_type)
    _el(domain, "name", spec.name)
    _el(domain, "uuid", spec.uuid)
    if spec.title:
        _el(domain, "title", spec.title)
    metadata = _el(domain, "metadata")
    _el(metadata, f"{{{METADATA_NS}}}instance", id=spec.instance_id, spec=digest)
    _el(domain, "memory", str(spec.memory_mib), unit="MiB")
    _el(domain, "currentMemory", str(spec.memory_mib), unit="MiB")
    if spec.hugepages_1g:
        _el(_el(_el(domain, "memoryBacking"), "hugepages"), "page", size="1", unit="GiB")
    _el(domain, "vcpu", str(spec.vcpu_count), placement="static")
    _cputune(domain, spec)
    _numatune(domain, spec)
    _os(domain, spec)
    _features(domain, spec)
    _cpu(domain, spec)
    _clock(domain, spec)
    _el(domain, "on_poweroff", "destroy")
    _el(domain, "on_reboot", "restart")
    _el(domain, "on_crash", "destroy")
    pm = _el(domain, "pm")
    _el(pm, "suspend-to-mem", enabled="no")
    _el(pm, "suspend-to-disk", enabled="no")
    _devices(domain, spec)
    return domain


def _cputune(domain: ET.Element, spec: DomainSpec) -> None:
    cputune = _el(domain, "cputune")
    for vcpu, host_cpu in sorted(spec.pins.items()):
        _el(cputune, "vcpupin", vcpu=vcpu, cpuset=host_cpu)
    if spec.emulator_cpus:
        _el(cputune, "emulatorpin", cpuset=format_cpuset(spec.emulator_cpus))


def _numatune(domain: ET.Element, spec: DomainSpec) -> None:
    if not spec.bind_memory:
        return
    numatune = _el(domain, "numatune")
    _el(numatune, "memory", mode="strict", nodeset=format_cpuset(spec.host_nodes))
    for index, cell in enumerate(spec.cells):
        _el(numatune, "memnode", cellid=index, mode="strict", nodeset=cell.host_node)


def _os(domain: ET.Element, spec: DomainSpec) -> None:
    os = _el(domain, "os", firmware="efi") if spec.uefi else _el(domain, "os")
    _el(os, "type", "hvm", arch="x86_64", machine="q35")
    if spec.kernel is not None:
        _el(os, "kernel", spec.kernel.kernel)
        if spec.kernel.initrd:
            _el(os, "initrd", spec.kernel.initrd)
        if spec.kernel.cmdline:
            _el(os, "cmdline", spec.kernel.cmdline)
    else:
        _el(os, "boot", dev="hd")


def _features(domain: ET.Element, spec: DomainSpec) -> None:
    features = _el(domain, "features")
    _el(features, "acpi")
    _el(features, "apic")
    if spec.windows:
        hyperv = _el(features, "hyperv", mode="custom")
        for name in ("relaxed", "vapic", "vpindex", "runtime", "synic", "stimer", "reset", "frequencies"):
            _el(hyperv, name, state="on")
        _el(hyperv, "spinlocks", state="on", retries="8191")
        # NVIDIA's consumer drivers refused to start under a hypervisor they recognised (error 43).
        _el(hyperv, "vendor_id", state="on", value="gpuadmin")
    if spec.domain_type == "kvm":
        _el(_el(features, "kvm"), "hidden", state="on")


def _cpu(domain: ET.Element, spec: DomainSpec) -> None:
    if spec.domain_type == "kvm":
        cpu = _el(domain, "cpu", mode="host-passthrough", check="none", migratable="off")
    else:
        cpu = _el(domain, "cpu", mode="maximum", check="none")  # TCG cannot pass the host CPU through
    sizes = {len(cell.vcpus) for cell in spec.cells}
    sockets = len(spec.cells) if len(sizes) == 1 else 1
    cores = spec.vcpu_count // (sockets * spec.threads_per_core)
    _el(cpu, "topology", sockets=sockets, dies=1, cores=cores, threads=spec.threads_per_core)
    if spec.domain_type == "kvm":
        _el(cpu, "cache", mode="passthrough")
        if pci_hole64_mib(spec.gpus) is not None:
            # The guest must be able to address RAM plus the 64-bit hole: give it the host's address width.
            _el(cpu, "maxphysaddr", mode="passthrough")
    numa = _el(cpu, "numa")
    for index, cell in enumerate(spec.cells):
        vcpus = format_cpuset(pin.vcpu for pin in cell.vcpus)
        _el(numa, "cell", id=index, cpus=vcpus, memory=cell.memory_mib, unit="MiB")


def _clock(domain: ET.Element, spec: DomainSpec) -> None:
    clock = _el(domain, "clock", offset="localtime" if spec.windows else "utc")
    _el(clock, "timer", name="rtc", tickpolicy="catchup")
    _el(clock, "timer", name="pit", tickpolicy="delay")
    _el(clock, "timer", name="hpet", present="no")
    if spec.windows:
        _el(clock, "timer", name="hypervclock", present="yes")


def pci_hole64_mib(gpus: tuple[GpuPassthrough, ...]) -> int | None:
    """The 64-bit PCI hole that maps every card's large BAR, in MiB; None when QEMU's default will do.

    A BAR is a power of two and must sit at a multiple of its size, and each root port's window also
    holds the card's small BARs, so a card is given twice its BAR rounded up to a power of two; the sum
    is rounded up to a power of two once more for the hole's own alignment above guest RAM. Four 80 GB
    A100s (128 GiB BARs) get a 1 TiB hole. A hole too small is what leaves the fourth card of a
    4-card guest with "BAR1 is 0M" and no driver.
    """
    need = sum(2 * _power_of_two_at_least(gpu.bar_mib) for gpu in gpus if gpu.bar_mib > 0)
    if need == 0:
        return None
    return max(_power_of_two_at_least(need), QEMU_DEFAULT_PCI_HOLE64_MIB)


def _power_of_two_at_least(value: int) -> int:
    return 1 << max(value - 1, 0).bit_length()


def _devices(domain: ET.Element, spec: DomainSpec) -> None:
    devices = _el(domain, "devices")
    root = _el(devices, "controller", type="pci", index=0, model="pcie-root")
    hole_mib = pci_hole64_mib(spec.gpus)
    if hole_mib is not None:
        _el(root, "pcihole64", str(hole_mib * 1024), unit="KiB")
    # One PCIe expander bus per guest cell, tied to that cell: the guest sees each GPU's NUMA node.
    expander_index = {}
    for cell_index in range(len(spec.cells)):
        index = 1 + cell_index
        expander = _el(devices, "controller", type="pci", index=index, model="pcie-expander-bus")
        _el(expander, "model", name="pxb-pcie")
        target = _el(expander, "target", busNr=256 - BUS_NUMBERS_PER_CELL * (len(spec.cells) - cell_index))
        _el(target, "node", str(cell_index))
        expander_index[cell_index] = index
    next_index = 1 + len(spec.cells)
    slots_used: dict[int, int] = {}
    for gpu in spec.gpus:
        port = _el(devices, "controller", type="pci", index=next_index, model="pcie-root-port")
        if gpu.guest_cell is not None:
            bus = expander_index[gpu.guest_cell]
            slot = slots_used.get(bus, 0)
            slots_used[bus] = slot + 1
            _el(
                port,
                "address",
                type="pci",
                domain="0x0000",
                bus=f"0x{bus:02x}",
                slot=f"0x{slot:02x}",
                function="0x0",
            )
        _hostdevs(devices, gpu, bus=next_index)
        next_index += 1
    # A cell with no card still gets a root port on its expander: a bus with nothing behind it is not
    # in the guest's device tree at all, so the guest would not see that cell's bus (nor could a card
    # be hot-plugged there).
    for bus in expander_index.values():
        if slots_used.get(bus):
            continue
        port = _el(devices, "controller", type="pci", index=next_index, model="pcie-root-port")
        _el(port, "address", type="pci", domain="0x0000", bus=f"0x{bus:02x}", slot="0x00", function="0x0")
        slots_used[bus] = 1
        next_index += 1
    _disk(devices, spec)
    _seed(devices, spec)
    _interface(devices, spec)
    serial = _el(devices, "serial", type="pty")
    if spec.console_log:
        _el(serial, "log", file=spec.console_log, append="off")
    _el(_el(serial, "target", type="isa-serial", port="0"), "model", name="isa-serial")
    _el(_el(devices, "console", type="pty"), "target", type="serial", port="0")
    # Pinned, VFIO-mapped memory cannot be ballooned back to the host anyway.
    _el(devices, "memballoon", model="none")


def _hostdevs(devices: ET.Element, gpu: GpuPassthrough, *, bus: int) -> None:
    """Every function of the card behind one root port, keeping its function numbers (drivers expect it)."""
    multifunction = len(gpu.functions) > 1
    for function in gpu.functions:
        domain_, bus_, rest = function.split(":")
        slot_, fn = rest.split(".")
        hostdev = _el(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        source = _el(hostdev, "source")
        _el(source, "address", domain=f"0x{domain_}", bus=f"0x{bus_}", slot=f"0x{slot_}", function=f"0x{fn}")
        guest = {
            "type": "pci",
            "domain": "0x0000",
            "bus": f"0x{bus:02x}",
            "slot": "0x00",
            "function": f"0x{fn}",
        }
        if multifunction and fn == "0":
            guest["multifunction"] = "on"
        _el(hostdev, "address", **guest)


def _disk(devices: ET.Element, spec: DomainSpec) -> None:
    disk = _el(devices, "disk", type="volume", device="disk")
    _el(disk, "driver", name="qemu", type="qcow2", cache="none", io="native", discard="unmap")
    _el(disk, "source", pool=spec.disk.pool, volume=spec.disk.volume)
    _el(disk, "target", dev="vda", bus="virtio")


def _seed(devices: ET.Element, spec: DomainSpec) -> None:
    """The NoCloud seed, read-only, as a SCSI cdrom: virtio-scsi rather than SATA, because cloud kernels
    (Debian's linux-image-cloud-amd64) carry no AHCI driver, and virtio-scsi is in every guest's initrd."""
    if spec.seed is None:
        return
    _el(devices, "controller", type="scsi", index=0, model="virtio-scsi")
    cdrom = _el(devices, "disk", type="volume", device="cdrom")
    _el(cdrom, "driver", name="qemu", type="raw")
    _el(cdrom, "source", pool=spec.seed.pool, volume=spec.seed.volume)
    _el(cdrom, "target", dev="sda", bus="scsi")
    _el(cdrom, "readonly")
    _el(cdrom, "address", type="drive", controller=0, bus=0, target=0, unit=0)


def _interface(devices: ET.Element, spec: DomainSpec) -> None:
    net = spec.network
    interface = _el(devices, "interface", type=net.kind)
    _el(interface, "mac", address=net.mac)
    if net.kind == "network":
        _el(interface, "source", network=net.source)
    elif net.kind == "bridge":
        _el(interface, "source", bridge=net.source)
    _el(interface, "model", type="virtio")
    if net.ipv4 and net.kind in ("network", "bridge"):
        # clean-traffic: no MAC, IP or ARP spoofing, and only IPv4 and ARP from this NIC.
        filterref = _el(interface, "filterref", filter=CLEAN_TRAFFIC)
        _el(filterref, "parameter", name="IP", value=net.ipv4)
    if net.outbound_mbps and net.kind in ("network", "bridge"):
        # libvirt counts kilobytes per second: 1 Mbit/s is 125 KB/s. Outbound is what the guest sends.
        bandwidth = _el(interface, "bandwidth")
        _el(bandwidth, "outbound", average=str(net.outbound_mbps * 125))
