"""From database rows to the plain DomainSpec the hypervisor layer builds domain XML from.

The spec follows the allocation exactly: guest vCPU n runs on the host CPU the allocation pinned it to,
each host NUMA node the allocation took memory from becomes one guest cell, and each allocated GPU
brings every function of its IOMMU group.
"""

import os

from django.conf import settings

from gpuadmin.queries import PreparedRead
from hypervisor.domain_xml import DomainSpecError
from hypervisor.spec import (
    STORAGE_POOL,
    DiskSpec,
    DomainSpec,
    GpuPassthrough,
    GuestCell,
    KernelBoot,
    NetworkSpec,
    SeedSpec,
    VcpuPin,
    domain_name,
    image_volume_name,
    instance_volume_name,
    mac_for_instance,
)
from inventory.models import HostCpu, Image, InstanceType, passthrough_functions
from networking.selectors import InstanceIpv4, instance_ipv4
from provisioning import cloudinit
from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance

MIB_PER_HUGEPAGE = 1024

# Not given: read it (None is a value: the instance holds no address, or has no seed).
UNSET = object()


# The allocation's rows as plain values (three joined models per CPU were most of a define's read), each
# read compiled once per connection (gpuadmin.queries.PreparedRead): a job builds this spec at every define.
_CPUS = PreparedRead(
    lambda allocation_id: (
        AllocatedCpu.objects.filter(allocation_id=allocation_id)
        .order_by("vcpu")
        .values("vcpu", "cpu__cpu_id", "cpu__numa_node__index", "cpu__siblings")
    ),
    allocation_id=int,
)
_MEMORY = PreparedRead(
    lambda allocation_id: AllocatedMemory.objects.filter(allocation_id=allocation_id).values(
        "numa_node__index", "memory_mib", "hugepages_1g"
    ),
    allocation_id=int,
)
_GPUS = PreparedRead(
    lambda allocation_id: (
        AllocatedGpu.objects.filter(allocation_id=allocation_id)
        .order_by("gpu__pci_address")
        .values(
            "gpu__pci_address", "gpu__companion_functions", "gpu__model__bar_mib", "gpu__numa_node__index"
        )
    ),
    allocation_id=int,
)
# The emulator threads' CPUs: the host's reserved CPUs on the NUMA nodes the allocation's CPUs are on.
_EMULATOR_CPUS = PreparedRead(
    lambda host_id, allocation_id: HostCpu.objects.filter(
        host_id=host_id,
        reserved=True,
        numa_node_id__in=AllocatedCpu.objects.filter(allocation_id=allocation_id).values("cpu__numa_node_id"),
    ).values("cpu_id"),
    host_id=int,
    allocation_id=int,
)


def domain_spec_for(
    *,
    instance: Instance,
    allocation: Allocation,
    include_gpus: bool = True,
    domain_type: str = "kvm",
    network: NetworkSpec | None = None,
    seed: SeedSpec | None | object = UNSET,
    address: InstanceIpv4 | None | object = UNSET,
) -> DomainSpec:
    """The guest `instance` should be on the host of `allocation` (released or not: the rows stay).

    `seed` and `address`, when the caller has them (a job builds the seed first, from the same read of
    the instance's address), are not read again."""
    if address is UNSET and (network is None or seed is UNSET):
        address = instance_ipv4(instance=instance)
    # Each row's values in the order the read names them.
    cpus = [tuple(row.values()) for row in _CPUS.rows(allocation_id=allocation.pk)]
    memory = [tuple(row.values()) for row in _MEMORY.rows(allocation_id=allocation.pk)]
    gpus = [tuple(row.values()) for row in _GPUS.rows(allocation_id=allocation.pk)]
    pins_by_node: dict[int, list[VcpuPin]] = {}
    for vcpu, cpu_id, node_index, _siblings in cpus:
        pins_by_node.setdefault(node_index, []).append(VcpuPin(vcpu=vcpu, host_cpu=cpu_id))
    memory_by_node = {node_index: memory_mib for node_index, memory_mib, _ in memory}
    if set(pins_by_node) != set(memory_by_node):
        raise DomainSpecError(
            f"allocation {allocation.pk}: vCPUs on nodes {sorted(pins_by_node)} but memory on nodes "
            f"{sorted(memory_by_node)}; each guest cell needs both"
        )
    # Guest cells in vCPU order, so cell 0 holds vCPU 0 and each cell's vCPUs are one range.
    order = sorted(pins_by_node, key=lambda node: min(pin.vcpu for pin in pins_by_node[node]))
    cells = tuple(
        GuestCell(host_node=node, memory_mib=memory_by_node[node], vcpus=tuple(pins_by_node[node]))
        for node in order
    )
    cell_of_node = {node: index for index, node in enumerate(order)}
    passthrough = tuple(
        GpuPassthrough(
            functions=tuple(passthrough_functions(pci_address, companions)),
            bar_mib=bar_mib,
            guest_cell=cell_of_node.get(node_index) if node_index is not None else None,
        )
        for pci_address, companions, bar_mib, node_index in gpus
    )
    siblings = {cpu_id: set(cpu_siblings) for _, cpu_id, _, cpu_siblings in cpus}
    emulator = _EMULATOR_CPUS.rows(host_id=allocation.host_id, allocation_id=allocation.pk)
    image = instance.image
    plan = allocation.instance_type
    return DomainSpec(
        name=domain_name(instance.pk),
        uuid=str(instance.domain_uuid),
        instance_id=instance.pk,
        title=instance.label,
        cells=cells,
        gpus=passthrough if include_gpus else (),
        emulator_cpus=tuple(sorted(row["cpu_id"] for row in emulator)),
        threads_per_core=2 if _sibling_pairs(cells, siblings) else 1,
        hugepages_1g=all(pages * MIB_PER_HUGEPAGE == memory_mib for _, memory_mib, pages in memory),
        uefi=bool(image and image.needs_uefi),
        windows=bool(image and image.os_type == Image.OsType.WINDOWS),
        domain_type=domain_type,
        disk=disk_spec_for(instance=instance, plan=plan, pool=allocation.host.storage_pool),
        network=network or network_spec_for(instance=instance, allocation=allocation, address=address),
        seed=seed_spec_for(instance=instance, pool=allocation.host.storage_pool, address=address)
        if seed is UNSET
        else seed,
        kernel=KernelBoot(image.kernel, image.initrd, image.kernel_cmdline)
        if image and image.kernel
        else None,
        console_log=console_log_path(instance.pk),
        bind_memory=settings.GPUADMIN_BIND_GUEST_MEMORY,
    )


def network_spec_for(
    *, instance: Instance, allocation: Allocation, address: InstanceIpv4 | None | object = UNSET
) -> NetworkSpec:
    """The NIC on the host's bridge, sending only from the instance's address, at the plan's rate."""
    if address is UNSET:
        address = instance_ipv4(instance=instance)
    return NetworkSpec(
        kind="bridge",
        source=allocation.host.bridge,
        mac=mac_for_instance(instance.pk),
        ipv4=address.address if address else "",
        outbound_mbps=allocation.instance_type.network_out_mbps,
    )


def console_log_path(instance_id: int) -> str:
    directory = settings.GPUADMIN_CONSOLE_LOG_DIR
    return os.path.join(directory, f"gpuadmin-{instance_id}-console.log") if directory else ""


def seed_spec_for(
    *, instance: Instance, pool: str = STORAGE_POOL, address: InstanceIpv4 | None | object = UNSET
) -> SeedSpec | None:
    """The instance's NoCloud seed in `pool`; None for an instance deployed from no image (Linode gives
    such a Linode no credentials either). Its network-config has the address the instance holds in its
    region's pool (networking), with the pool's prefix and gateway; DHCP when it holds none."""
    if instance.image_id is None:
        return None
    if address is UNSET:
        address = instance_ipv4(instance=instance)
    credentials = instance.cloud_init_user_data
    customer = cloudinit.decode_user_data(instance.user_data) if instance.user_data else None
    return SeedSpec(
        pool=pool,
        instance_id=instance.pk,
        meta_data=cloudinit.meta_data(instance_id=f"gpuadmin-{instance.pk}", hostname=instance.label),
        user_data=cloudinit.seed_user_data(credentials=credentials, customer=customer),
        network_config=cloudinit.network_config(
            mac=mac_for_instance(instance.pk),
            address=address.address if address else None,
            prefix_length=address.prefix_length if address else None,
            gateway=address.gateway if address else None,
        ),
    )


def disk_spec_for(*, instance: Instance, plan: InstanceType, pool: str = STORAGE_POOL) -> DiskSpec:
    """The instance's disk in `pool` (its host's): a copy-on-write overlay of its image, as large as the
    plan says, or as the volume already is when it grew past that (a volume never shrinks)."""
    image = instance.image
    return DiskSpec(
        pool=pool,
        volume=instance_volume_name(instance.pk),
        capacity_mib=max(plan.disk_mib, image.size_mib if image else 0, instance.disk_mib),
        backing_volume=image_volume_name(image.pk) if image else None,
    )


def _sibling_pairs(cells: tuple[GuestCell, ...], siblings: dict[int, set[int]]) -> bool:
    """True when vCPUs 2k and 2k+1 of every cell run on the two threads of one host core."""
    for cell in cells:
        pins = sorted(cell.vcpus, key=lambda pin: pin.vcpu)
        if len(pins) % 2:
            return False
        for first, second in zip(pins[::2], pins[1::2], strict=True):
            if (
                first.vcpu % 2
                or second.host_cpu == first.host_cpu
                or second.host_cpu not in siblings[first.host_cpu]
            ):
                return False
    return True
