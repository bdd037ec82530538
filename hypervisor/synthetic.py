"""Synthetic host descriptions: the shapes of real servers, for the demo, fleets and tests."""

from hypervisor.description import CpuDescription, GpuDescription, HostDescription, NumaCellDescription

NVIDIA = 0x10DE
RTX_6000 = 0x1E30
RTX_6000_NAME = "NVIDIA Quadro RTX 6000"
# The functions an RTX card exposes beside the GPU: HDA audio, USB 3.1 xHCI, USB Type-C UCSI.
RTX_COMPANION_FUNCTIONS = (1, 2, 3)
# PCI buses where a dual-socket server's x16 slots usually sit: two per socket.
GPU_BUSES = (0x3B, 0x5E, 0x86, 0xAF, 0xD8, 0x18, 0x3A, 0x5D)


def dual_socket_gpu_host(
    hostname: str,
    *,
    numa_nodes: int = 2,
    cores_per_node: int = 24,
    threads_per_core: int = 2,
    memory_mib_per_node: int = 192 * 1024,
    gpus_per_node: int = 2,
    vendor_id: int = NVIDIA,
    product_id: int = RTX_6000,
    product_name: str = RTX_6000_NAME,
    hugepages_1g_per_node: int = 0,
) -> HostDescription:
    """A host numbered as Linux numbers a multi-socket box: first threads of every core, then siblings."""
    total_cores = numa_nodes * cores_per_node
    cells = []
    gpus = []
    for node in range(numa_nodes):
        cpus = []
        for core in range(cores_per_node):
            first = node * cores_per_node + core
            siblings = tuple(first + t * total_cores for t in range(threads_per_core))
            for cpu_id in siblings:
                cpus.append(CpuDescription(cpu_id=cpu_id, core_id=core, socket_id=node, siblings=siblings))
        cpus.sort(key=lambda c: c.cpu_id)
        cells.append(
            NumaCellDescription(
                index=node,
                memory_mib=memory_mib_per_node,
                cpus=tuple(cpus),
                hugepages_1g_total=hugepages_1g_per_node,
                hugepages_1g_free=hugepages_1g_per_node,
            )
        )
        for slot in range(gpus_per_node):
            bus = GPU_BUSES[(node * gpus_per_node + slot) % len(GPU_BUSES)] + (
                node * gpus_per_node + slot
            ) // len(GPU_BUSES)
            address = f"0000:{bus:02x}:00.0"
            gpus.append(
                GpuDescription(
                    pci_address=address,
                    vendor_id=vendor_id,
                    product_id=product_id,
                    product_name=product_name,
                    numa_node=node,
                    iommu_group=100 + node * gpus_per_node + slot,
                    companion_functions=tuple(f"0000:{bus:02x}:00.{fn}" for fn in RTX_COMPANION_FUNCTIONS),
                )
            )
    return HostDescription(hostname=hostname, cells=tuple(cells), gpus=tuple(gpus))


def standard_host(
    hostname: str, *, cores_per_node: int = 32, memory_mib_per_node: int = 256 * 1024
) -> HostDescription:
    return dual_socket_gpu_host(
        hostname, cores_per_node=cores_per_node, memory_mib_per_node=memory_mib_per_node, gpus_per_node=0
    )
