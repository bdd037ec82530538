"""What a guest should look like, in plain data: the input of the domain XML builder and lifecycle calls.

provisioning/domain_spec.py builds a DomainSpec from the database rows; nothing here knows Django.
"""

import hashlib
from dataclasses import dataclass, replace

STORAGE_POOL = "gpuadmin"
DOMAIN_TYPES = ("kvm", "qemu")  # qemu = TCG, for machines where KVM is unusable (CI sandboxes)


def domain_name(instance_id: int) -> str:
    return f"gpuadmin-{instance_id}"


def instance_volume_name(instance_id: int) -> str:
    return f"gpuadmin-{instance_id}.qcow2"


def seed_volume_prefix(instance_id: int) -> str:
    """Every seed volume of the instance starts so (the trailing dash keeps 1 apart from 12)."""
    return f"gpuadmin-{instance_id}-cidata-"


def image_volume_name(image_id: str) -> str:
    """The volume holding an image in a host's pool: "linode/ubuntu22.04" -> "linode--ubuntu22.04.qcow2"."""
    return image_id.replace("/", "--") + ".qcow2"


def mac_for_instance(instance_id: int) -> str:
    """A stable MAC in QEMU's locally administered range, so redefining a domain never changes it."""
    low = instance_id & 0xFFFFFF
    return f"52:54:00:{low >> 16:02x}:{(low >> 8) & 0xFF:02x}:{low & 0xFF:02x}"


@dataclass(frozen=True)
class VcpuPin:
    vcpu: int
    host_cpu: int


@dataclass(frozen=True)
class GuestCell:
    """One guest NUMA cell, backed by exactly one host NUMA node: its vCPUs run and its memory lives there."""

    host_node: int
    memory_mib: int
    vcpus: tuple[VcpuPin, ...]


@dataclass(frozen=True)
class GpuPassthrough:
    """One card: every function of its IOMMU group, the card itself first."""

    functions: tuple[str, ...]
    # Index into DomainSpec.cells of the guest cell whose PCIe expander bus the card sits behind;
    # None when the host reports no NUMA node for the card (it then sits on the root bus).
    guest_cell: int | None
    # The card's large 64-bit BAR (the VRAM aperture, BAR1 on NVIDIA cards) in MiB: the guest firmware must
    # map it inside the 64-bit PCI hole, or the card's driver fails to initialize it. 0: not known.
    bar_mib: int = 0


@dataclass(frozen=True)
class DiskSpec:
    pool: str
    volume: str
    capacity_mib: int
    # The image volume (same pool) the disk is a copy-on-write overlay of; None for a blank disk.
    backing_volume: str | None = None


SEED_FILES = ("meta-data", "user-data", "network-config")


@dataclass(frozen=True)
class SeedSpec:
    """The instance's NoCloud seed: three files on a `cidata` ISO volume in the host's pool."""

    pool: str
    instance_id: int
    meta_data: str
    user_data: str
    network_config: str

    @property
    def files(self) -> dict[str, str]:
        return dict(zip(SEED_FILES, (self.meta_data, self.user_data, self.network_config), strict=True))

    @property
    def digest(self) -> str:
        hashed = hashlib.sha256()
        for name, text in self.files.items():
            hashed.update(f"{name}\0{len(text.encode())}\0".encode() + text.encode())
        return hashed.hexdigest()[:16]

    @property
    def volume(self) -> str:
        """Named by its content: new credentials make a new volume, and a domain that points at it."""
        return f"{seed_volume_prefix(self.instance_id)}{self.digest}.iso"


@dataclass(frozen=True)
class KernelBoot:
    """Boot a kernel straight from the host (as Linode's own kernels do) instead of the disk's loader."""

    kernel: str  # a path on the host
    initrd: str = ""
    cmdline: str = ""


@dataclass(frozen=True)
class NetworkSpec:
    kind: str  # "network" (a libvirt network), "bridge" (a host bridge) or "user" (QEMU user networking)
    source: str  # network or bridge name; empty for "user"
    mac: str
    # The guest's own IPv4 address: libvirt's clean-traffic nwfilter lets the NIC send only from it (and
    # from its MAC), so a guest cannot spoof another's address. Empty: no filter.
    ipv4: str = ""
    # What the guest may send, in Mbit/s (the plan's network_out): a <bandwidth> outbound average. 0: none.
    outbound_mbps: int = 0


@dataclass(frozen=True)
class DomainSpec:
    name: str
    uuid: str
    instance_id: int
    cells: tuple[GuestCell, ...]
    disk: DiskSpec
    network: NetworkSpec
    gpus: tuple[GpuPassthrough, ...] = ()
    emulator_cpus: tuple[int, ...] = ()  # reserved host CPUs of the cells' nodes: QEMU's own threads
    threads_per_core: int = 1  # 2 when every pair of guest vCPUs is pinned to the two threads of a core
    hugepages_1g: bool = False
    uefi: bool = False
    windows: bool = False  # Hyper-V enlightenments and a local-time clock
    domain_type: str = "kvm"  # "": the host's preferred one, resolved by lifecycle.ensure_defined
    title: str = ""
    seed: SeedSpec | None = None  # attached read-only as a SCSI cdrom on a virtio-scsi controller
    kernel: KernelBoot | None = None  # None: the firmware boots the disk
    console_log: str = ""  # a file on the host the serial console is also written to; "" for none
    # Bind each guest cell's memory to its host node (strict). Off only where a machine stands in for a
    # host with more NUMA nodes than it has (a one-node CI machine booting a two-cell guest).
    bind_memory: bool = True

    @property
    def vcpu_count(self) -> int:
        return sum(len(cell.vcpus) for cell in self.cells)

    @property
    def memory_mib(self) -> int:
        return sum(cell.memory_mib for cell in self.cells)

    @property
    def host_nodes(self) -> tuple[int, ...]:
        return tuple(cell.host_node for cell in self.cells)

    @property
    def pins(self) -> dict[int, int]:
        """Guest vCPU -> host CPU."""
        return {pin.vcpu: pin.host_cpu for cell in self.cells for pin in cell.vcpus}

    def without_gpus(self) -> "DomainSpec":
        """The same guest with no PCI passthrough: for hosts with no GPU (a CI machine)."""
        return replace(self, gpus=())
