"""Capacity numbers as staff and the API read them: buckets that add up, stranded cards, sellable plans."""

import json

import pytest
from django.core.management import call_command
from django.db.models import F

from inventory.counters import gpu_set_state, numa_counters_recount
from inventory.models import GpuDevice, Host, HostCpu, NumaNode
from inventory.selectors import GpuCounts, host_capacity, plan_available, region_capacity
from provisioning.claims import allocation_claim, allocation_release
from provisioning.models import Instance
from tests.builders import (
    make_account,
    make_gpu_host,
    make_gpu_plan,
    make_region,
    make_standard_host,
    make_standard_plan,
    unique,
)

pytestmark = pytest.mark.django_db


def claim(plan, region=None):
    region = region or make_region()
    instance = Instance.objects.create(
        account=make_account(), label=unique("cap"), region=region, instance_type=plan
    )
    return allocation_claim(instance=instance, plan=plan, region=region)


def plans():
    return {g: make_gpu_plan(g) for g in (1, 2, 3, 4)}


def only_gpu_summary(region=None):
    (summary,) = [s for s in region_capacity(region=region) if s.kind == "gpu"]
    return summary


def test_every_gpu_is_in_exactly_one_bucket():
    host = make_gpu_host(numa_nodes=2, gpus_per_node=4)
    p = plans()
    held = claim(p[2])
    cards = list(host.gpus.exclude(pk__in=held.gpus.values("gpu_id")).order_by("pci_address"))
    for card, state in zip(cards, ["reserved", "faulty", "quarantined", "removed", "cleaning"], strict=False):
        gpu_set_state(gpu=card, state=state, reason="test")
    GpuDevice.objects.filter(pk=cards[5].pk).update(numa_node=None)
    numa_counters_recount(host=host)

    counts = only_gpu_summary().gpus
    assert counts.as_dict() == {
        "total": 8,
        "allocated": 2,
        "free": 0,
        "stranded": 0,
        "unplaceable": 1,
        "host_out_of_service": 0,
        "reserved": 1,
        "cleaning": 1,
        "faulty": 1,
        "quarantined": 1,
        "removed": 1,
    }
    assert counts.total == sum(getattr(counts, bucket) for bucket in GpuCounts.BUCKETS)


def test_free_cards_on_a_host_that_is_not_enabled_are_counted_apart_and_not_sellable():
    make_gpu_host(numa_nodes=2, gpus_per_node=2, state=Host.State.DRAINING)
    plans()
    summary = only_gpu_summary()
    assert (summary.gpus.free, summary.gpus.host_out_of_service) == (0, 4)
    assert {p.plan: p.sellable for p in summary.sellable} == dict.fromkeys(
        ["g1-gpu-rtx6000-1", "g1-gpu-rtx6000-2", "g1-gpu-rtx6000-3", "g1-gpu-rtx6000-4"], 0
    )
    assert summary.hosts == 1 and summary.hosts_enabled == 0


def test_sellable_per_plan_and_per_host():
    first = make_gpu_host(numa_nodes=2, gpus_per_node=2)
    make_gpu_host(numa_nodes=2, gpus_per_node=4)
    p = plans()
    claim(p[1])  # best fit: a node of the 2x2 host, which cannot hold a 4-GPU plan any more
    summary = only_gpu_summary()
    assert {p.gpus: p.sellable for p in summary.sellable} == {1: 3 + 8, 2: 1 + 4, 3: 1 + 2, 4: 0 + 2}
    per_host = {h.hostname: {p.gpus: p.sellable for p in h.sellable} for h in summary.per_host}
    assert per_host[first.hostname] == {1: 3, 2: 1, 3: 1, 4: 0}
    (one,) = host_capacity(host=first)
    assert one.gpus.allocated == 1 and one.gpus.free == 3


def test_free_gpus_whose_node_has_no_cores_left_are_stranded():
    host = make_gpu_host(numa_nodes=1, gpus_per_node=3, cores_per_node=10)  # 8 usable cores = 16 vCPUs
    p = plans()
    claim(p[2])  # 16 vCPUs: every usable core of the node
    summary = only_gpu_summary()
    assert (summary.gpus.free, summary.gpus.stranded) == (1, 1)
    assert {p.gpus: p.sellable for p in summary.sellable}[1] == 0
    assert plan_available(plan=p[1], region=host.region) is False


def test_plan_available_follows_claims_and_releases():
    region = make_region()
    make_gpu_host(numa_nodes=1, gpus_per_node=2)
    p = plans()
    assert plan_available(plan=p[2], region=region)
    held = claim(p[2])
    assert not plan_available(plan=p[1], region=region)
    allocation_release(allocation=held)
    assert not plan_available(plan=p[1], region=region)  # the cards are being cleaned
    for gpu in GpuDevice.objects.filter(state="cleaning"):
        gpu_set_state(gpu=gpu, state="available")
    assert plan_available(plan=p[2], region=region)
    assert not plan_available(plan=p[3], region=region)


def test_plan_available_for_a_plan_spanning_nodes_and_for_standard_plans():
    region = make_region()
    make_gpu_host(numa_nodes=2, gpus_per_node=2)
    p = plans()
    assert plan_available(plan=p[4], region=region)
    assert not plan_available(plan=make_standard_plan(2), region=region)
    make_standard_host()
    assert plan_available(plan=make_standard_plan(2), region=region)


def test_standard_hosts_have_their_own_summary():
    make_standard_host()
    make_standard_plan(2)
    (summary,) = region_capacity()
    assert summary.kind == "standard" and summary.gpus.total == 0
    assert {p.plan: p.sellable for p in summary.sellable} == {"g6-standard-2": 60}  # 2 nodes x 30 cores


def test_capacity_costs_a_fixed_number_of_queries_whatever_the_fleet(django_assert_max_num_queries):
    region = make_region()
    plans()
    make_gpu_host()
    with django_assert_max_num_queries(6):
        region_capacity(region=region)
    for _ in range(8):
        make_gpu_host()
    make_standard_host()
    with django_assert_max_num_queries(6):
        summaries = region_capacity(region=region)
    assert sum(s.hosts for s in summaries) == 10


def test_capacity_report_prints_the_numbers_and_json(capsys):
    make_gpu_host(numa_nodes=2, gpus_per_node=2)
    p = plans()
    claim(p[1])
    call_command("capacity_report", "--region", "us-east", "--hosts")
    text = capsys.readouterr().out
    assert "us-east  RTX 6000 GPUs: 1 hosts (1 enabled)" in text
    assert "total 4, allocated 1, free 3" in text
    assert "g1-gpu-rtx6000-1 3" in text
    call_command("capacity_report", "--json")
    (data,) = json.loads(capsys.readouterr().out)
    assert data["gpus"]["allocated"] == 1 and data["sellable"]["g1-gpu-rtx6000-2"] == 1


def test_capacity_report_recount_repairs_drift(capsys):
    host = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    NumaNode.objects.filter(host=host).update(free_gpus=F("free_gpus") - 1)
    call_command("capacity_report", "--recount")
    assert "free_gpus 1 -> 2" in capsys.readouterr().err
    assert NumaNode.objects.get(host=host).free_gpus == 2


def test_capacity_report_refuses_an_unknown_region():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No region 'mars'"):
        call_command("capacity_report", "--region", "mars")


def test_reserved_cpus_count_neither_as_free_cores_nor_as_capacity():
    host = make_gpu_host(numa_nodes=1, gpus_per_node=1, cores_per_node=8)
    assert NumaNode.objects.get(host=host).free_cores == 6
    HostCpu.objects.filter(host=host, reserved=False).update(reserved=True)
    numa_counters_recount(host=host)
    plans()
    assert NumaNode.objects.get(host=host).free_cores == 0
    assert only_gpu_summary().gpus.stranded == 1
