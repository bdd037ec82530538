import pytest
from django.test import override_settings

from inventory.models import HostCpu
from tests.builders import make_gpu_host

pytestmark = pytest.mark.django_db


def test_gpu_host_topology_is_recorded_per_numa_node():
    host = make_gpu_host(numa_nodes=2, gpus_per_node=2, cores_per_node=24, memory_gib_per_node=192)
    nodes = list(host.numa_nodes.order_by("index"))
    assert [n.index for n in nodes] == [0, 1]
    assert all(n.memory_mib == 192 * 1024 for n in nodes)
    for node in nodes:
        assert node.cpus.count() == 48
        assert node.gpus.count() == 2
        gpu = node.gpus.first()
        assert len(gpu.companion_functions) == 3
        assert all(f.startswith(gpu.pci_address[:-1]) for f in gpu.companion_functions)


@override_settings(GPUADMIN_RESERVED_CORES_PER_NODE=2)
def test_reserved_cpus_are_whole_cores_on_every_node():
    host = make_gpu_host(numa_nodes=2, cores_per_node=24)
    reserved = list(HostCpu.objects.filter(host=host, reserved=True))
    assert len(reserved) == 2 * 2 * 2  # 2 nodes x 2 cores x 2 threads
    for cpu in reserved:
        siblings = HostCpu.objects.filter(host=host, cpu_id__in=cpu.siblings)
        assert all(s.reserved for s in siblings)
    assert {c.numa_node.index for c in reserved} == {0, 1}
