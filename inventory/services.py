from django.conf import settings
from django.db import transaction

from hypervisor.description import HostDescription
from inventory.counters import numa_counters_recount
from inventory.models import GpuDevice, GpuModel, Host, HostCpu, NumaNode, Region


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
) -> Host:
    """Record a new host and its topology in one transaction."""
    with transaction.atomic():
        host = Host(region=region, hostname=hostname, libvirt_uri=libvirt_uri, kind=kind, profile=profile)
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
