"""Plain descriptions of a host's hardware, as discovery reads them and inventory records them."""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CpuDescription:
    cpu_id: int
    core_id: int
    socket_id: int
    siblings: tuple[int, ...]


@dataclass(frozen=True)
class HugepagePool:
    """The pages of one size a NUMA cell has set aside (the kernel's nr_hugepages for that size)."""

    size_kib: int
    total: int
    free: int


@dataclass(frozen=True)
class NumaCellDescription:
    index: int
    memory_mib: int
    cpus: tuple[CpuDescription, ...]
    hugepages_1g_total: int = 0
    hugepages_1g_free: int = 0
    # Every huge page size the cell reports, 2 MiB and 1 GiB alike; the 1 GiB counts are repeated above.
    hugepages: tuple[HugepagePool, ...] = ()


@dataclass(frozen=True)
class GpuDescription:
    pci_address: str
    vendor_id: int
    product_id: int
    product_name: str
    numa_node: int | None
    iommu_group: int | None
    companion_functions: tuple[str, ...] = ()
    # PCI addresses in the IOMMU group that are neither the card nor one of its own functions.
    foreign_functions: tuple[str, ...] = ()


@dataclass(frozen=True)
class HostDescription:
    hostname: str
    cells: tuple[NumaCellDescription, ...]
    gpus: tuple[GpuDescription, ...] = field(default=())

    @property
    def cpu_count(self) -> int:
        return sum(len(cell.cpus) for cell in self.cells)
