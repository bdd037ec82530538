"""allocation_report: what each active allocation holds, as staff read it in a terminal."""

import json

import pytest
from django.core.management import call_command

from provisioning.claims import allocation_claim, allocation_release
from provisioning.models import Instance
from provisioning.selectors import active_allocations
from tests.builders import make_account, make_gpu_host, make_gpu_plan, make_region

pytestmark = pytest.mark.django_db


def claim(plan, label):
    region = make_region()
    account = make_account(name=f"{label}-account")
    instance = Instance.objects.create(account=account, label=label, region=region, instance_type=plan)
    return allocation_claim(instance=instance, plan=plan, region=region)


def test_report_lists_gpus_cpus_and_memory_per_node(capsys):
    host = make_gpu_host(numa_nodes=2, gpus_per_node=2)
    claim(make_gpu_plan(3), "render-01")
    released = claim(make_gpu_plan(1), "render-02")
    allocation_release(allocation=released)

    (line,) = active_allocations()
    assert (line.instance_label, line.account, line.host, line.plan) == (
        "render-01",
        "render-01-account",
        host.hostname,
        "g1-gpu-rtx6000-3",
    )
    assert sorted(g.numa_node for g in line.gpus) == [0, 1, 1] or sorted(g.numa_node for g in line.gpus) == [
        0,
        0,
        1,
    ]
    assert all(len(g.functions) == 4 for g in line.gpus)
    assert [c.vcpu for c in line.cpus] == list(range(20))
    assert sum(m.memory_mib for m in line.memory) == 96 * 1024

    call_command("allocation_report")
    text = capsys.readouterr().out
    assert (
        f"{host.hostname}  instance {line.instance} (render-01, render-01-account)  g1-gpu-rtx6000-3" in text
    )
    assert "GPU 0000:" in text and "+3 functions" in text and "CPUs node 0:" in text
    assert "1 active allocation(s)." in text and "render-02" not in text

    call_command("allocation_report", "--json")
    (data,) = json.loads(capsys.readouterr().out)
    assert data["instance_label"] == "render-01" and len(data["cpus"]) == 20


def test_report_costs_a_fixed_number_of_queries(django_assert_max_num_queries):
    make_gpu_host(numa_nodes=2, gpus_per_node=4)
    for n in range(6):
        claim(make_gpu_plan(1), f"q-{n:02d}")
    with django_assert_max_num_queries(4):
        assert len(active_allocations()) == 6


def test_report_says_when_nothing_is_allocated(capsys):
    call_command("allocation_report")
    assert "No active allocations." in capsys.readouterr().out
