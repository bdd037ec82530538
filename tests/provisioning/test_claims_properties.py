"""Random topologies and random create/delete sequences against the real claim and release services."""

from collections import Counter

import pytest
from django.db import transaction
from django.db.models import Count
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypervisor.synthetic import dual_socket_gpu_host
from inventory.counters import gpu_set_state, numa_counters_recount
from inventory.fit import Shape
from inventory.models import GpuDevice, Host, NumaNode
from inventory.selectors import GpuCounts, capacity_snapshot, region_capacity
from inventory.services import host_create
from provisioning.claims import allocation_claim, allocation_release
from provisioning.exceptions import NoCapacity
from provisioning.models import AllocatedCpu, AllocatedGpu, Allocation, Instance
from provisioning.placement import exhaustive_fit
from tests.builders import make_account, make_gpu_model, make_gpu_plan, make_region, unique

pytestmark = pytest.mark.django_db

topologies = st.lists(
    st.tuples(
        st.integers(1, 3),  # NUMA nodes
        st.integers(0, 3),  # GPUs per node
        st.sampled_from([6, 10, 14, 24]),  # cores per node (2 of them reserved)
        st.sampled_from([48, 96, 192]),  # GiB per node (8 reserved)
    ),
    min_size=1,
    max_size=3,
)
operations = st.lists(
    st.tuples(st.booleans(), st.integers(1, 4), st.integers(0, 99)), min_size=1, max_size=14
)


def build_hosts(region, topology):
    make_gpu_model()
    for nodes, gpus, cores, gib in topology:
        name = unique("prop")
        host_create(
            region=region,
            hostname=name,
            libvirt_uri="test:///default",
            kind=Host.Kind.GPU,
            description=dual_socket_gpu_host(
                name,
                numa_nodes=nodes,
                gpus_per_node=gpus,
                cores_per_node=cores,
                memory_mib_per_node=gib * 1024,
            ),
        )


def assert_invariants(region, plans):
    active_gpus = AllocatedGpu.objects.filter(released_at__isnull=True)
    assert not active_gpus.values("gpu").annotate(n=Count("id")).filter(n__gt=1).exists()
    active_cpus = AllocatedCpu.objects.filter(released_at__isnull=True)
    assert not active_cpus.values("cpu").annotate(n=Count("id")).filter(n__gt=1).exists()
    for allocation in Allocation.objects.filter(released_at__isnull=True).select_related("instance_type"):
        plan = allocation.instance_type
        gpu_nodes = Counter(allocation.gpus.values_list("gpu__numa_node_id", flat=True))
        cpu_nodes = Counter(allocation.cpus.values_list("cpu__numa_node_id", flat=True))
        memory = dict(allocation.memory.values_list("numa_node_id", "memory_mib"))
        # NUMA-local: the nodes giving GPUs are exactly the nodes giving vCPUs and memory.
        assert set(gpu_nodes) == set(cpu_nodes) == set(memory)
        assert sum(gpu_nodes.values()) == plan.gpus
        assert sum(cpu_nodes.values()) == plan.vcpus and sum(memory.values()) == plan.memory_mib
        for node_id, gpus in gpu_nodes.items():
            assert abs(cpu_nodes[node_id] - plan.vcpus * gpus / plan.gpus) < plan.vcpus / plan.gpus + 2
        assert not allocation.cpus.filter(cpu__reserved=True).exists()
        held = set(allocation.cpus.values_list("cpu__cpu_id", flat=True))
        for siblings in allocation.cpus.values_list("cpu__siblings", flat=True):
            assert set(siblings) <= held or len(held) % 2  # whole cores (an odd count leaves one idle)
    for host in Host.objects.filter(region=region):
        assert numa_counters_recount(host=host) == []
    region_counts = GpuCounts()
    for summary in region_capacity(region=region):
        counts = summary.gpus
        assert counts.total == sum(getattr(counts, bucket) for bucket in GpuCounts.BUCKETS)
        assert 0 <= counts.stranded <= counts.free
        assert sum(host.gpus.total for host in summary.per_host) == counts.total
        region_counts.add(counts)
    assert region_counts.total == GpuDevice.objects.filter(host__region=region).count()
    assert region_counts.allocated == active_gpus.filter(allocation__host__region=region).count()
    for node in NumaNode.objects.filter(host__region=region):
        assert 0 <= node.used_memory_mib <= node.memory_mib - node.reserved_memory_mib


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(topology=topologies, ops=operations)
def test_random_create_delete_sequences_keep_every_invariant(topology, ops):
    with transaction.atomic():
        region = make_region(unique("prop-region"))
        build_hosts(region, topology)
        plans = {g: make_gpu_plan(g) for g in (1, 2, 3, 4)}
        account = make_account()
        held = []
        for create, gpus, pick in ops:
            if create or not held:
                plan = plans[gpus]
                instance = Instance.objects.create(
                    account=account, label=unique("prop"), region=region, instance_type=plan
                )
                try:
                    held.append(allocation_claim(instance=instance, plan=plan, region=region))
                except NoCapacity as refused:
                    assert region.id in refused.detail and plan.id in refused.detail
                    snapshot = capacity_snapshot(region=region)
                    enabled = [
                        snapshot.free[h] for h, host in snapshot.hosts.items() if host.state == "enabled"
                    ]
                    assert exhaustive_fit(Shape.of(plan), enabled) is None
            else:
                allocation = held.pop(pick % len(held))
                allocation_release(allocation=allocation)
                for gpu in GpuDevice.objects.filter(state=GpuDevice.State.CLEANING)[: pick % 3]:
                    gpu_set_state(gpu=gpu, state=GpuDevice.State.AVAILABLE)
            assert_invariants(region, plans)
        transaction.set_rollback(True)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(topology=topologies, gpus=st.integers(1, 4))
def test_sellable_is_exactly_how_many_claims_then_succeed(topology, gpus):
    with transaction.atomic():
        region = make_region(unique("sell-region"))
        build_hosts(region, topology)
        plan = make_gpu_plan(gpus)
        for other in (1, 2, 3, 4):
            make_gpu_plan(other)
        summaries = region_capacity(region=region)
        sellable = sum(p.sellable for s in summaries for p in s.sellable if p.plan == plan.id)
        account = make_account()
        won = 0
        while True:
            instance = Instance.objects.create(
                account=account, label=unique("sell"), region=region, instance_type=plan
            )
            try:
                allocation_claim(instance=instance, plan=plan, region=region)
            except NoCapacity:
                break
            won += 1
        assert won == sellable
        transaction.set_rollback(True)
