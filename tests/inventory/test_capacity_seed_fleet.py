"""seed_fleet: bulk hosts whose rows and counters are what one-by-one enrolment would have written."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inventory.counters import numa_counters_recount
from inventory.models import GpuDevice, Host, HostCpu, NumaNode, Region
from inventory.selectors import region_capacity
from tests.builders import make_gpu_host, make_gpu_plan

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("profile", "gpus", "kind"),
    [("rtx6000-2x2", 4, "gpu"), ("rtx6000-2x4", 8, "gpu"), ("standard-2x32", 0, "standard")],
)
def test_seeded_hosts_have_full_topology_and_exact_counters(profile, gpus, kind, capsys):
    call_command("seed_fleet", "--hosts", "3", "--region", "eu-test", "--profile", profile)
    assert "Added 3" in capsys.readouterr().out
    hosts = list(Host.objects.filter(region_id="eu-test"))
    assert len(hosts) == 3 and {h.kind for h in hosts} == {kind} and {h.profile for h in hosts} == {profile}
    for host in hosts:
        assert NumaNode.objects.filter(host=host).count() == 2
        assert GpuDevice.objects.filter(host=host).count() == gpus
        assert HostCpu.objects.filter(host=host).count() == (128 if kind == "standard" else 96)
        assert numa_counters_recount(host=host) == []  # the bulk counters are what a recount finds
    if gpus:
        gpu = GpuDevice.objects.filter(host=hosts[0]).first()
        assert len(gpu.functions) == 4 and gpu.numa_node is not None


def test_seeded_hosts_match_a_host_recorded_one_by_one():
    make_gpu_plan(1)
    reference = make_gpu_host(numa_nodes=2, gpus_per_node=2)
    call_command("seed_fleet", "--hosts", "1", "--region", "us-east")
    seeded = Host.objects.exclude(pk=reference.pk).get()
    columns = ("index", "memory_mib", "reserved_memory_mib", "free_gpus", "free_cores", "threads_per_core")
    assert list(NumaNode.objects.filter(host=seeded).values_list(*columns)) == list(
        NumaNode.objects.filter(host=reference).values_list(*columns)
    )
    cpu_columns = ("cpu_id", "core_id", "socket_id", "siblings", "reserved")
    assert list(HostCpu.objects.filter(host=seeded).order_by("cpu_id").values_list(*cpu_columns)) == list(
        HostCpu.objects.filter(host=reference).order_by("cpu_id").values_list(*cpu_columns)
    )
    (summary,) = region_capacity(region="us-east")
    assert {p.plan: p.sellable for p in summary.sellable} == {"g1-gpu-rtx6000-1": 8}


def test_hostnames_continue_and_regions_are_created():
    call_command("seed_fleet", "--hosts", "2", "--region", "ap-test")
    call_command("seed_fleet", "--hosts", "2", "--region", "ap-test")
    names = sorted(Host.objects.values_list("hostname", flat=True))
    assert names == [f"ap-test-gpu-fleet-{n:05d}" for n in (1, 2, 3, 4)]
    assert Region.objects.filter(pk="ap-test").exists()


def test_seed_fleet_refuses_zero_hosts():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("seed_fleet", "--hosts", "0")
