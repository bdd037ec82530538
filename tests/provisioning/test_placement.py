"""The placement engine on hand-made snapshots: the NUMA rule, rounding, policies and rejection reasons."""

import pytest

from inventory.fit import (
    GPU_HOST,
    STANDARD_HOST,
    HostFree,
    NodeFree,
    Shape,
    apply_split,
    feedable_gpus,
    host_splits,
    sellable_on_host,
)
from provisioning.placement import RequestLabels, best_fit, explain, first_fit, place, ranked, spread

RTX = 1
GIB = 1024
PLANS = {
    1: Shape(1, 8, 32 * GIB, RTX),
    2: Shape(2, 16, 64 * GIB, RTX),
    3: Shape(3, 20, 96 * GIB, RTX),
    4: Shape(4, 24, 128 * GIB, RTX),
}
LABELS = RequestLabels(region="us-east", plan="g1-gpu-rtx6000-4", gpu_model="RTX 6000")


def node(node_id, free_gpus, *, index=None, cores=22, memory_gib=184, tpc=2, hugepages=0, model=RTX):
    return NodeFree(
        node_id=node_id,
        index=node_id % 10 if index is None else index,
        free_gpus=free_gpus,
        free_cores=cores,
        threads_per_core=tpc,
        free_memory_mib=memory_gib * GIB,
        free_hugepages_1g=hugepages,
        gpu_model_id=model,
    )


def host(host_id, *nodes, kind=GPU_HOST):
    return HostFree(host_id=host_id, hostname=f"h{host_id}", nodes=tuple(nodes), kind=kind)


def test_three_gpu_plan_over_two_nodes_rounds_to_whole_cores_with_the_remainder_on_the_larger_share():
    h = host(1, node(10, 2, index=0), node(11, 2, index=1))
    split = place(PLANS[3], [h])
    assert split is not None and split.node_count == 2
    larger, smaller = sorted(split.shares, key=lambda s: -s.gpus)
    assert (larger.gpus, larger.vcpus, larger.cores, larger.memory_mib) == (2, 14, 7, 64 * GIB)
    assert (smaller.gpus, smaller.vcpus, smaller.cores, smaller.memory_mib) == (1, 6, 3, 32 * GIB)


def test_four_gpu_plan_over_two_nodes_splits_evenly():
    split = place(PLANS[4], [host(1, node(10, 2, index=0), node(11, 2, index=1))])
    assert [(s.gpus, s.vcpus, s.memory_mib) for s in split.shares] == [(2, 12, 64 * GIB), (2, 12, 64 * GIB)]


def test_odd_vcpus_take_a_whole_core_and_leave_its_sibling_to_nobody():
    split = place(Shape(1, 3, 4 * GIB, RTX), [host(1, node(10, 1, cores=2))])
    assert (split.shares[0].vcpus, split.shares[0].cores) == (3, 2)


def test_a_plan_that_fits_one_node_anywhere_uses_one_node():
    split_host = host(1, node(10, 1, index=0), node(11, 1, index=1))
    single_host = host(2, node(20, 2, index=0), node(21, 0, index=1))
    for policy in (best_fit, first_fit, spread):
        split = place(PLANS[2], [split_host, single_host], policy)
        assert (split.host_id, split.node_count) == (2, 1)


def test_best_fit_takes_the_node_with_the_fewest_free_gpus_that_still_fits():
    hosts = [host(1, node(10, 4)), host(2, node(20, 3)), host(3, node(30, 2)), host(4, node(40, 1))]
    assert place(PLANS[2], hosts).host_id == 3
    assert place(PLANS[1], hosts).host_id == 4


def test_best_fit_never_opens_an_empty_node_while_a_partly_used_one_fits():
    h = host(1, node(10, 4, index=0), node(11, 4, index=1))
    for _ in range(4):
        split = place(PLANS[1], [h])
        h = apply_split(h, split)
    assert sorted(n.free_gpus for n in h.nodes) == [0, 4]  # one node still takes a 4-GPU plan


def test_best_fit_prefers_the_fuller_host_on_a_tie_so_empty_hosts_stay_empty():
    nearly_full = host(1, node(10, 1, index=0), node(11, 0, index=1))
    half_empty = host(2, node(20, 1, index=0), node(21, 2, index=1))
    assert place(PLANS[1], [half_empty, nearly_full]).host_id == 1


def test_first_fit_and_spread_choose_differently_from_best_fit():
    hosts = [host(1, node(10, 4)), host(2, node(20, 1)), host(3, node(30, 3))]
    assert place(PLANS[1], hosts, best_fit).host_id == 2
    assert place(PLANS[1], hosts, first_fit).host_id == 1
    assert place(PLANS[1], hosts, spread).host_id == 1
    assert [h.host_id for h, _ in ranked(PLANS[1], hosts, spread)] == [1, 3, 2]


def test_a_node_without_the_cores_for_its_share_is_not_used():
    starved = host(1, node(10, 4, cores=3))
    fed = host(2, node(20, 4, cores=4))
    assert place(PLANS[1], [starved, fed]).host_id == 2  # 8 vCPUs = 4 whole cores


def test_only_nodes_of_the_plans_model_and_only_gpu_hosts_take_gpu_plans():
    other_model = host(1, node(10, 4, model=2))
    standard = host(2, node(20, 0, model=None), kind=STANDARD_HOST)
    assert place(PLANS[1], [other_model, standard]) is None


def test_standard_plans_go_to_one_node_of_a_standard_host_never_to_a_gpu_host():
    shape = Shape(0, 4, 8 * GIB, None)
    gpu_host = host(1, node(10, 4))
    standard = host(
        2, node(20, 0, cores=30, model=None), node(21, 0, cores=1, model=None), kind=STANDARD_HOST
    )
    split = place(shape, [gpu_host, standard])
    assert split.host_id == 2 and split.node_count == 1
    assert split.shares[0].gpus == 0 and split.shares[0].cores == 2


def test_standard_plan_too_big_for_one_node_is_split_in_whole_cores():
    shape = Shape(0, 8, 8 * GIB, None)
    standard = host(
        2,
        node(20, 0, cores=2, model=None, index=0),
        node(21, 0, cores=3, model=None, index=1),
        kind=STANDARD_HOST,
    )
    split = place(shape, [standard])
    assert split.node_count == 2
    assert sum(s.vcpus for s in split.shares) == 8
    assert sum(s.memory_mib for s in split.shares) == 8 * GIB


def test_hugepages_back_a_share_only_when_the_node_has_enough_free_pages():
    with_pages = place(PLANS[1], [host(1, node(10, 1, hugepages=32))])
    too_few = place(PLANS[1], [host(1, node(10, 1, hugepages=31))])
    assert with_pages.shares[0].hugepages_1g == 32
    assert too_few.shares[0].hugepages_1g == 0


def test_sellable_on_host_counts_repeated_placements():
    empty_2x4 = host(1, node(10, 4, index=0), node(11, 4, index=1))
    assert [sellable_on_host(empty_2x4, PLANS[g]) for g in (1, 2, 3, 4)] == [8, 4, 2, 2]
    demo_2x2 = host(2, node(20, 2, index=0), node(21, 2, index=1))
    assert [sellable_on_host(demo_2x2, PLANS[g]) for g in (1, 2, 3, 4)] == [4, 2, 1, 1]


def test_free_gpus_the_node_cannot_feed_are_stranded():
    starved = node(10, 3, cores=3, memory_gib=184)  # 6 vCPUs: the 4-GPU plan's 6 per GPU feeds one
    assert feedable_gpus(starved, list(PLANS.values())) == 1
    assert feedable_gpus(node(11, 3), list(PLANS.values())) == 3


def test_every_split_on_a_host_uses_the_fewest_nodes_the_host_allows():
    h = host(1, node(10, 1, index=0), node(11, 1, index=1), node(12, 2, index=2))
    assert {s.node_count for s in host_splits(h, PLANS[3])} == {2}


@pytest.mark.parametrize(
    ("hosts", "in_service", "shape", "expected"),
    [
        ([], 0, PLANS[4], "us-east has no RTX 6000 GPU hosts in service for g1-gpu-rtx6000-4."),
        ([], 3, PLANS[4], "us-east has no free RTX 6000 GPUs for g1-gpu-rtx6000-4, which needs 4."),
        (
            [host(1, node(10, 3))],
            1,
            PLANS[4],
            "us-east has 3 free RTX 6000 GPUs, but g1-gpu-rtx6000-4 needs 4.",
        ),
        (
            [host(1, node(10, 3)), host(2, node(20, 3))],
            2,
            PLANS[4],
            "us-east has 6 free RTX 6000 GPUs, but no host has 4 free (at most 3 on one host) "
            "for g1-gpu-rtx6000-4.",
        ),
        (
            [host(1, node(10, 2)), host(2, node(20, 4, cores=10))],
            2,
            PLANS[4],
            "us-east has 6 free RTX 6000 GPUs, but no host has 4 free on NUMA nodes with 24 free dedicated "
            "cores for g1-gpu-rtx6000-4.",
        ),
        (
            [host(1, node(10, 2)), host(2, node(20, 4, memory_gib=100))],
            2,
            PLANS[4],
            "us-east has 6 free RTX 6000 GPUs, but no host has 4 free on NUMA nodes with 128 GiB of free "
            "memory for g1-gpu-rtx6000-4.",
        ),
        (
            [host(2, node(20, 4, cores=1, memory_gib=1))],
            1,
            PLANS[4],
            "us-east has 4 free RTX 6000 GPUs, but no host has 4 free on NUMA nodes with 24 free dedicated "
            "cores and 128 GiB of free memory for g1-gpu-rtx6000-4.",
        ),
    ],
)
def test_a_rejection_names_region_plan_and_the_scarce_resource(hosts, in_service, shape, expected):
    assert place(shape, hosts) is None
    assert explain(shape, hosts, LABELS, hosts_in_service=in_service) == expected


def test_a_standard_rejection_names_cores_and_memory():
    labels = RequestLabels(region="us-east", plan="g6-standard-4")
    shape = Shape(0, 4, 8 * GIB, None)
    assert (
        explain(shape, [], labels, hosts_in_service=0)
        == "us-east has no standard hosts in service for g6-standard-4."
    )
    assert "4 free dedicated cores and 8 GiB of free memory" in explain(shape, [], labels, hosts_in_service=2)
