"""Claims, releases and moves against the database: the rows written, the counters, the refusals."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from inventory.counters import gpu_set_state, numa_counters_recount
from inventory.models import GpuDevice, Host, HostCpu, NumaNode
from provisioning.claims import (
    allocation_claim,
    allocation_move,
    allocation_move_abandon,
    allocation_move_finish,
    allocation_release,
)
from provisioning.exceptions import NoCapacity
from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance
from provisioning.placement import first_fit, spread
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
GIB = 1024


def new_instance(plan, region=None):
    return Instance.objects.create(
        account=make_account(), label=unique("claim"), region=region or make_region(), instance_type=plan
    )


def claim(plan, region=None, **kwargs):
    region = region or make_region()
    return allocation_claim(instance=new_instance(plan, region), plan=plan, region=region, **kwargs)


def counters(host):
    return list(
        NumaNode.objects.filter(host=host)
        .order_by("index")
        .values_list("free_gpus", "allocated_gpus", "free_cores", "used_memory_mib")
    )


def test_claim_writes_numa_local_rows_counters_generation_and_the_instance_host():
    host = make_gpu_host(numa_nodes=2, gpus_per_node=2, cores_per_node=24)
    plan = make_gpu_plan(3)
    instance = new_instance(plan)
    generation = Host.objects.get(pk=host.pk).generation
    allocation = allocation_claim(instance=instance, plan=plan, region=host.region)

    instance.refresh_from_db()
    host.refresh_from_db()
    assert instance.host == host and allocation.host == host and host.generation == generation + 1
    gpus = list(allocation.gpus.select_related("gpu__numa_node"))
    assert len(gpus) == 3
    per_node_gpus = {}
    for row in gpus:
        per_node_gpus[row.gpu.numa_node.index] = per_node_gpus.get(row.gpu.numa_node.index, 0) + 1
        assert row.gpu.functions[0] == row.gpu.pci_address and len(row.gpu.functions) == 4
    assert sorted(per_node_gpus.values()) == [1, 2]
    cpus = list(allocation.cpus.select_related("cpu__numa_node"))
    assert [c.vcpu for c in cpus] == list(range(20))
    assert not any(c.cpu.reserved for c in cpus)
    taken = {c.cpu.cpu_id for c in cpus}
    assert all(set(c.cpu.siblings) <= taken for c in cpus)  # whole cores: both siblings to this guest
    per_node_vcpus = {}
    for c in cpus:
        per_node_vcpus[c.cpu.numa_node.index] = per_node_vcpus.get(c.cpu.numa_node.index, 0) + 1
    big = max(per_node_gpus, key=per_node_gpus.get)
    small = min(per_node_gpus, key=per_node_gpus.get)
    assert (per_node_vcpus[big], per_node_vcpus[small]) == (14, 6)
    memory = {m.numa_node.index: m.memory_mib for m in allocation.memory.select_related("numa_node")}
    assert memory == {big: 64 * GIB, small: 32 * GIB}
    after = dict(zip([0, 1], counters(host), strict=True))
    assert after[big] == (0, 2, 22 - 7, 64 * GIB)
    assert after[small] == (1, 1, 22 - 3, 32 * GIB)
    assert numa_counters_recount(host=host) == []


def test_a_plan_that_fits_one_node_takes_one_node():
    make_gpu_host(numa_nodes=2, gpus_per_node=2)
    allocation = claim(make_gpu_plan(2))
    assert allocation.memory.count() == 1
    assert len({row.gpu.numa_node_id for row in allocation.gpus.select_related("gpu")}) == 1
    assert len({row.cpu.numa_node_id for row in allocation.cpus.select_related("cpu")}) == 1


def test_claim_uses_free_1g_hugepages_when_the_node_has_them():
    host = make_gpu_host(numa_nodes=1, gpus_per_node=1)
    NumaNode.objects.filter(host=host).update(hugepages_1g_total=64)
    allocation = claim(make_gpu_plan(1))
    row = allocation.memory.get()
    assert (row.memory_mib, row.hugepages_1g) == (32 * GIB, 32)
    assert NumaNode.objects.get(host=host).hugepages_1g_used == 32


def test_best_fit_fills_the_partly_used_node_first():
    make_gpu_host(numa_nodes=2, gpus_per_node=4)
    plan = make_gpu_plan(1)
    nodes = [{row.gpu.numa_node_id for row in claim(plan).gpus.select_related("gpu")}.pop() for _ in range(4)]
    assert len(set(nodes)) == 1


@pytest.mark.parametrize("state", ["reserved", "faulty", "quarantined", "removed", "cleaning"])
def test_only_available_gpus_are_given(state):
    host = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    bad = host.gpus.order_by("pci_address").first()
    gpu_set_state(gpu=bad, state=state, reason="test")
    plan = make_gpu_plan(1)
    allocation = claim(plan)
    assert allocation.gpus.get().gpu_id != bad.pk
    with pytest.raises(NoCapacity):
        claim(plan)


def test_a_gpu_sharing_its_iommu_group_with_another_device_or_without_numa_node_is_never_placed():
    host = make_gpu_host(numa_nodes=1, gpus_per_node=3)
    shared, no_numa, good = host.gpus.order_by("pci_address")
    GpuDevice.objects.filter(pk=shared.pk).update(foreign_functions=["0000:00:1f.0"])
    GpuDevice.objects.filter(pk=no_numa.pk).update(numa_node=None)
    numa_counters_recount(host=host)
    plan = make_gpu_plan(1)
    assert claim(plan).gpus.get().gpu_id == good.pk
    with pytest.raises(NoCapacity, match="has no free RTX 6000 GPUs"):
        claim(plan)


def test_two_cards_in_one_iommu_group_are_neither_placed():
    host = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    GpuDevice.objects.filter(host=host).update(iommu_group=7)
    numa_counters_recount(host=host)
    with pytest.raises(NoCapacity):
        claim(make_gpu_plan(1))


@pytest.mark.parametrize("state", [Host.State.DRAINING, Host.State.MAINTENANCE, Host.State.DISABLED])
def test_hosts_that_are_not_enabled_take_nothing(state):
    make_gpu_host(state=state)
    with pytest.raises(NoCapacity, match="no RTX 6000 GPU hosts in service"):
        claim(make_gpu_plan(1))


def test_standard_plans_go_to_standard_hosts_and_gpu_plans_never_do():
    gpu_host = make_gpu_host()
    standard = make_standard_host()
    allocation = claim(make_standard_plan(4))
    assert allocation.host == standard and allocation.gpus.count() == 0
    assert allocation.cpus.count() == 4 and allocation.memory.get().memory_mib == 8 * GIB
    Host.objects.filter(pk=gpu_host.pk).update(state=Host.State.DISABLED)
    with pytest.raises(NoCapacity):
        claim(make_gpu_plan(1))


def test_standard_plans_never_land_on_gpu_hosts():
    make_gpu_host()
    with pytest.raises(NoCapacity, match="us-east has no standard hosts in service for g6-standard-2"):
        claim(make_standard_plan(2))


def test_rejection_names_region_plan_and_the_scarce_cores():
    host = make_gpu_host(numa_nodes=2, gpus_per_node=2, cores_per_node=24)
    starved = host.numa_nodes.get(index=0)
    HostCpu.objects.filter(numa_node=starved).update(reserved=True)
    HostCpu.objects.filter(numa_node=host.numa_nodes.get(index=1)).update(reserved=True)
    numa_counters_recount(host=host)
    with pytest.raises(NoCapacity) as refused:
        claim(make_gpu_plan(4))
    assert refused.value.detail == (
        "us-east has 4 free RTX 6000 GPUs, but no host has 4 free on NUMA nodes with 24 free dedicated cores "
        "for g1-gpu-rtx6000-4."
    )
    assert "not currently available" not in refused.value.detail


def test_release_gives_everything_back_sends_gpus_to_cleaning_and_is_idempotent():
    host = make_gpu_host(numa_nodes=2, gpus_per_node=2)
    before = counters(host)
    allocation = claim(make_gpu_plan(2))
    gpu_ids = list(allocation.gpus.values_list("gpu_id", flat=True))
    claimed = Host.objects.get(pk=host.pk).generation
    allocation_release(allocation=allocation)
    host.refresh_from_db()
    released = host.generation
    assert released > claimed
    allocation.refresh_from_db()
    assert allocation.released_at is not None
    assert not AllocatedGpu.objects.filter(allocation=allocation, released_at__isnull=True).exists()
    assert not AllocatedCpu.objects.filter(allocation=allocation, released_at__isnull=True).exists()
    assert set(GpuDevice.objects.filter(pk__in=gpu_ids).values_list("state", flat=True)) == {"cleaning"}
    cleaned = [
        (free - 2 if i == 0 else free, allocated, cores, used)
        for i, (free, allocated, cores, used) in enumerate(before)
    ]
    node_of_gpus = GpuDevice.objects.get(pk=gpu_ids[0]).numa_node.index
    expected = [
        (free - (2 if index == node_of_gpus else 0), allocated, cores, used)
        for index, (free, allocated, cores, used) in enumerate(before)
    ]
    assert counters(host) == expected, cleaned

    allocation_release(allocation=allocation)
    host.refresh_from_db()
    assert host.generation == released and counters(host) == expected

    for gpu in GpuDevice.objects.filter(pk__in=gpu_ids):
        gpu_set_state(gpu=gpu, state=GpuDevice.State.AVAILABLE)
    assert counters(host) == before


def test_move_on_the_same_host_keeps_the_gpus_it_holds_without_cleaning():
    host = make_gpu_host(numa_nodes=2, gpus_per_node=2)
    instance = new_instance(make_gpu_plan(1))
    old = allocation_claim(instance=instance, plan=make_gpu_plan(1), region=host.region)
    old_gpu = old.gpus.get().gpu_id
    new = allocation_move(allocation=old, plan=make_gpu_plan(2))
    old.refresh_from_db()
    assert old.released_at is not None and new.released_at is None
    assert new.host == host and old_gpu in set(new.gpus.values_list("gpu_id", flat=True))
    assert GpuDevice.objects.get(pk=old_gpu).state == GpuDevice.State.AVAILABLE
    assert new.cpus.count() == 16
    assert numa_counters_recount(host=host) == []

    smaller = allocation_move(allocation=new, plan=make_gpu_plan(1))
    assert smaller.gpus.get().gpu_id == old_gpu
    let_go = set(new.gpus.values_list("gpu_id", flat=True)) - {old_gpu}
    assert set(GpuDevice.objects.filter(pk__in=let_go).values_list("state", flat=True)) == {"cleaning"}
    assert numa_counters_recount(host=host) == []


def test_move_goes_to_another_host_when_its_own_is_full():
    first = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    plan1 = make_gpu_plan(1)
    instance = new_instance(plan1)
    old = allocation_claim(instance=instance, plan=plan1, region=first.region)
    claim(plan1)  # the other card of the same host
    second = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    new = allocation_move(allocation=old, plan=make_gpu_plan(2))
    instance.refresh_from_db()
    old.refresh_from_db()
    # The old allocation holds its host until the disk is copied: the instance still lives there.
    assert new.host == second and instance.host == first
    assert old.released_at is None and old.move_source
    old_gpu = GpuDevice.objects.get(pk=old.gpus.get().gpu_id)
    assert (
        old_gpu.state == GpuDevice.State.AVAILABLE and old_gpu.allocations.filter(released_at=None).exists()
    )
    assert numa_counters_recount(host=first) == [] and numa_counters_recount(host=second) == []

    assert allocation_move_finish(source=old, target=new) == [old_gpu.pk]
    instance.refresh_from_db()
    old.refresh_from_db()
    assert instance.host == second and old.released_at is not None
    assert GpuDevice.objects.get(pk=old_gpu.pk).state == GpuDevice.State.CLEANING
    assert numa_counters_recount(host=first) == [] and numa_counters_recount(host=second) == []


def test_an_abandoned_move_gives_the_instance_back_its_allocation_as_it_was():
    first = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    plan1, plan2 = make_gpu_plan(1), make_gpu_plan(2)
    instance = new_instance(plan1)
    old = allocation_claim(instance=instance, plan=plan1, region=first.region)
    claim(plan1)
    second = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    held = (set(old.gpus.values_list("gpu_id", flat=True)), set(old.cpus.values_list("cpu_id", flat=True)))
    new = allocation_move(allocation=old, plan=plan2)
    new_gpus = set(new.gpus.values_list("gpu_id", flat=True))
    Instance.objects.filter(pk=instance.pk).update(instance_type=plan2)  # as the resize job does

    assert sorted(allocation_move_abandon(source=old, target=new)) == sorted(new_gpus)
    instance.refresh_from_db()
    old.refresh_from_db()
    new.refresh_from_db()
    assert (instance.host, instance.instance_type) == (first, plan1)
    assert old.released_at is None and not old.move_source and new.released_at is not None
    assert (
        set(old.gpus.values_list("gpu_id", flat=True)),
        set(old.cpus.values_list("cpu_id", flat=True)),
    ) == held
    assert set(GpuDevice.objects.filter(pk__in=new_gpus).values_list("state", flat=True)) == {"cleaning"}
    assert not Allocation.objects.filter(host=second, released_at=None).exists()
    assert numa_counters_recount(host=first) == [] and numa_counters_recount(host=second) == []


def test_one_allocation_home_and_one_move_source_at_most_the_database_says_so():
    host = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    instance = new_instance(make_gpu_plan(1))
    Allocation.objects.create(instance=instance, host=host, instance_type=instance.instance_type)
    Allocation.objects.create(
        instance=instance, host=host, instance_type=instance.instance_type, move_source=True
    )
    for move_source in (False, True):
        with pytest.raises(IntegrityError), transaction.atomic():
            Allocation.objects.create(
                instance=instance, host=host, instance_type=instance.instance_type, move_source=move_source
            )


def test_a_move_that_does_not_fit_changes_nothing():
    host = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    plan1 = make_gpu_plan(1)
    old = claim(plan1)
    claim(plan1)
    before = (counters(host), Host.objects.get(pk=host.pk).generation)
    with pytest.raises(NoCapacity, match="g1-gpu-rtx6000-2"):
        allocation_move(allocation=old, plan=make_gpu_plan(2))
    old.refresh_from_db()
    assert old.released_at is None and old.gpus.filter(released_at__isnull=True).count() == 1
    assert GpuDevice.objects.get(pk=old.gpus.get().gpu_id).state == GpuDevice.State.AVAILABLE
    assert (counters(host), Host.objects.get(pk=host.pk).generation) == before


def test_claim_nested_in_the_callers_transaction_rolls_back_with_it():
    host = make_gpu_host()
    plan = make_gpu_plan(1)
    before = counters(host)
    with pytest.raises(RuntimeError), transaction.atomic():
        claim(plan)
        raise RuntimeError("the caller changed its mind")
    assert not Allocation.objects.exists() and counters(host) == before


def test_the_database_refuses_a_second_active_row_for_one_gpu_or_cpu_from_a_buggy_caller():
    make_gpu_host()
    allocation = claim(make_gpu_plan(1))
    intruder = Allocation.objects.create(
        instance=new_instance(make_gpu_plan(1)), host=allocation.host, instance_type=allocation.instance_type
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        AllocatedGpu.objects.create(allocation=intruder, gpu_id=allocation.gpus.get().gpu_id)
    with pytest.raises(IntegrityError), transaction.atomic():
        AllocatedCpu.objects.create(allocation=intruder, cpu_id=allocation.cpus.first().cpu_id, vcpu=0)
    # Released rows are history: the same GPU may appear again once the first row is released.
    AllocatedGpu.objects.filter(allocation=allocation).update(released_at=timezone.now())
    AllocatedGpu.objects.create(allocation=intruder, gpu_id=allocation.gpus.get().gpu_id)


def test_the_database_refuses_counters_below_zero():
    host = make_gpu_host()
    node = host.numa_nodes.first()
    for field in ("free_gpus", "allocated_gpus", "free_cores"):
        with pytest.raises(IntegrityError), transaction.atomic():
            NumaNode.objects.filter(pk=node.pk).update(**{field: -1})


def test_counters_that_overstate_a_host_are_repaired_by_the_claim_that_trips_on_them():
    liar = make_gpu_host(numa_nodes=1, gpus_per_node=1)
    plan = make_gpu_plan(1)
    assert claim(plan).host == liar
    NumaNode.objects.filter(host=liar).update(free_gpus=1)  # drift: the counter says a card is free
    with pytest.raises(NoCapacity):
        claim(plan)
    honest = make_gpu_host(numa_nodes=1, gpus_per_node=2)
    assert claim(plan).host == honest  # the liar is tried first (tightest), refused on its rows
    assert NumaNode.objects.get(host=liar).free_gpus == 0
    assert AllocatedGpu.objects.filter(released_at__isnull=True).count() == 2


def test_counters_that_understate_a_host_are_repaired_by_a_recount():
    host = make_gpu_host(numa_nodes=1, gpus_per_node=1)
    NumaNode.objects.filter(host=host).update(free_gpus=0, free_cores=0)
    with pytest.raises(NoCapacity):
        claim(make_gpu_plan(1))
    changes = numa_counters_recount(host=host)
    assert changes and "free_gpus 0 -> 1" in changes[0]
    assert claim(make_gpu_plan(1)).host == host


def test_first_fit_and_spread_are_claim_policies_too():
    a = make_gpu_host(numa_nodes=1, gpus_per_node=4)
    b = make_gpu_host(numa_nodes=1, gpus_per_node=1)
    assert claim(make_gpu_plan(1), policy=first_fit).host == a
    assert claim(make_gpu_plan(1), policy=spread).host == a
    assert claim(make_gpu_plan(1)).host == b  # best fit: the host with the fewest free cards


def test_claim_costs_the_same_number_of_queries_whatever_the_fleet(django_assert_max_num_queries):
    region = make_region()
    make_gpu_host()
    plan = make_gpu_plan(1)
    first, second, third = (new_instance(plan, region) for _ in range(3))
    # The first claim on a PostgreSQL connection also prepares its statements (one PREPARE each).
    with django_assert_max_num_queries(40):
        allocation_claim(instance=first, plan=plan, region=region)
    with django_assert_max_num_queries(20):
        allocation_claim(instance=second, plan=plan, region=region)
    for _ in range(10):
        make_gpu_host()
    with django_assert_max_num_queries(20):
        allocation_claim(instance=third, plan=plan, region=region)


def test_memory_rows_and_used_memory_agree():
    make_gpu_host(numa_nodes=2, gpus_per_node=2)
    for gpus in (1, 3):
        claim(make_gpu_plan(gpus))
    for node in NumaNode.objects.all():
        held = sum(
            m.memory_mib
            for m in AllocatedMemory.objects.filter(numa_node=node, allocation__released_at__isnull=True)
        )
        assert node.used_memory_mib == held
