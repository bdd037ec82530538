"""Synthetic fleets in bulk: thousands of hosts shaped like the demo's, for benchmarks and what-if runs.

Rows are written with bulk_create from one template per profile, counters included, so 10,000 hosts
take seconds instead of the minutes host_create would need one host at a time. The tables are analysed
afterwards, so the claim plans on statistics that count the new hosts.
"""

import io
import json
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from hypervisor.description import HostDescription
from hypervisor.synthetic import RTX_6000_NAME, dual_socket_gpu_host, standard_host
from inventory.counters import cores_of
from inventory.models import GpuDevice, GpuModel, Host, HostCpu, NumaNode, Region
from inventory.services import reserved_cpu_ids
from inventory.statistics import inventory_statistics_refresh

BATCH = 5000


@dataclass(frozen=True)
class Profile:
    kind: str
    describe: Callable[[str], HostDescription]
    help: str


PROFILES = {
    "rtx6000-2x2": Profile(
        Host.Kind.GPU,
        lambda name: dual_socket_gpu_host(name),
        "the demo host: 2 nodes x (24 cores, 2 RTX 6000)",
    ),
    "rtx6000-2x4": Profile(
        Host.Kind.GPU,
        lambda name: dual_socket_gpu_host(name, gpus_per_node=4),
        "8-GPU host: 2 nodes x (24 cores, 192 GiB, 4 RTX 6000)",
    ),
    "standard-2x32": Profile(
        Host.Kind.STANDARD, lambda name: standard_host(name), "2 nodes x 32 cores, no GPU"
    ),
}
DEFAULT_PROFILE = "rtx6000-2x2"


def fleet_seed(
    *, region: Region, count: int, profile: str = DEFAULT_PROFILE, prefix: str | None = None
) -> list[str]:
    """Add `count` hosts of `profile` to `region`; returns the hostnames (numbering continues)."""
    shape = PROFILES[profile]
    prefix = prefix or f"{region.id}-{'gpu' if shape.kind == Host.Kind.GPU else 'std'}-fleet"
    template = shape.describe(f"{prefix}-template")
    model = None
    if template.gpus:
        model, _ = GpuModel.objects.get_or_create(
            vendor_id=template.gpus[0].vendor_id,
            product_id=template.gpus[0].product_id,
            defaults={"name": RTX_6000_NAME, "short_name": "RTX 6000", "vram_mib": 24 * 1024},
        )
    reserved = reserved_cpu_ids(
        description=template, cores_per_node=settings.GPUADMIN_RESERVED_CORES_PER_NODE
    )
    reserved_memory = settings.GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE
    taken = set(Host.objects.filter(hostname__startswith=f"{prefix}-").values_list("hostname", flat=True))
    names, number = [], 1
    while len(names) < count:
        name = f"{prefix}-{number:05d}"
        if name not in taken:
            names.append(name)
        number += 1
    counters = {}
    for cell in template.cells:
        cpus = [(c.cpu_id, list(c.siblings), c.cpu_id in reserved, False) for c in cell.cpus]
        counters[cell.index] = cores_of(cpus)
    cpu_columns = {
        cpu.cpu_id: (
            cpu.cpu_id,
            cpu.core_id,
            cpu.socket_id,
            json.dumps(list(cpu.siblings)),
            cpu.cpu_id in reserved,
        )
        for cell in template.cells
        for cpu in cell.cpus
    }
    gpu_columns = {
        gpu.pci_address: (
            gpu.pci_address,
            gpu.iommu_group,
            model.pk if model else None,
            json.dumps(list(gpu.companion_functions)),
            json.dumps(list(gpu.foreign_functions)),
            GpuDevice.State.AVAILABLE,
            "",
        )
        for gpu in template.gpus
    }
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Check the foreign keys row by row as COPY goes, not all at commit: measurably faster.
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for start in range(0, count, BATCH // 10):
            batch = names[start : start + BATCH // 10]
            hosts = Host.objects.bulk_create(
                [
                    Host(
                        region=region,
                        hostname=n,
                        libvirt_uri="test:///default",
                        simulated=True,
                        kind=shape.kind,
                        profile=profile,
                    )
                    for n in batch
                ]
            )
            if hosts and hosts[0].pk is None:
                by_name = dict(Host.objects.filter(hostname__in=batch).values_list("hostname", "pk"))
                for host in hosts:
                    host.pk = host.id = by_name[host.hostname]
            nodes = NumaNode.objects.bulk_create(
                [
                    NumaNode(
                        host=host,
                        index=cell.index,
                        memory_mib=cell.memory_mib,
                        reserved_memory_mib=min(reserved_memory, cell.memory_mib),
                        hugepages_1g_total=cell.hugepages_1g_total,
                        gpu_model=model if any(g.numa_node == cell.index for g in template.gpus) else None,
                        free_gpus=sum(1 for g in template.gpus if g.numa_node == cell.index),
                        free_cores=counters[cell.index][0],
                        threads_per_core=counters[cell.index][1],
                    )
                    for host in hosts
                    for cell in template.cells
                ],
                batch_size=BATCH,
            )
            if nodes and nodes[0].pk is None:
                ids = {
                    (h, i): pk
                    for h, i, pk in NumaNode.objects.filter(host__in=hosts).values_list(
                        "host_id", "index", "pk"
                    )
                }
                for node in nodes:
                    node.pk = node.id = ids[(node.host_id, node.index)]
            node_of = {(node.host_id, node.index): node for node in nodes}
            cpu_rows = [
                (host.pk, node_of[(host.pk, cell.index)].pk, *cpu_columns[cpu.cpu_id])
                for host in hosts
                for cell in template.cells
                for cpu in cell.cpus
            ]
            _insert(
                HostCpu,
                ["host", "numa_node", "cpu_id", "core_id", "socket_id", "siblings", "reserved"],
                cpu_rows,
            )
            gpu_rows = [
                (host.pk, node_of[(host.pk, gpu.numa_node)].pk, *gpu_columns[gpu.pci_address])
                for host in hosts
                for gpu in template.gpus
            ]
            _insert(
                GpuDevice,
                [
                    "host",
                    "numa_node",
                    "pci_address",
                    "iommu_group",
                    "model",
                    "companion_functions",
                    "foreign_functions",
                    "state",
                    "state_reason",
                ],
                gpu_rows,
            )
    # The claim's plans are made on these statistics: they must count the new hosts (inventory.statistics).
    inventory_statistics_refresh()
    return names


def _insert(model, field_names: list[str], rows: list[tuple]) -> None:
    """Plain rows, no model instances: a million CPU rows through bulk_create take minutes.

    PostgreSQL gets COPY; other databases get executemany. Values must not contain tabs, newlines or
    backslashes (ours are ids, PCI addresses and JSON lists of them).
    """
    if not rows:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = [model._meta.get_field(name).column for name in field_names]
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            buffer = io.StringIO()
            for row in rows:
                buffer.write("\t".join(_copy_value(v) for v in row))
                buffer.write("\n")
            buffer.seek(0)
            cursor.cursor.copy_expert(f"COPY {table} ({quoted}) FROM STDIN", buffer)
        else:
            marks = ", ".join(["%s"] * len(columns))
            for start in range(0, len(rows), BATCH):
                cursor.executemany(
                    f"INSERT INTO {table} ({quoted}) VALUES ({marks})", rows[start : start + BATCH]
                )


def _copy_value(value) -> str:
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    return str(value)
