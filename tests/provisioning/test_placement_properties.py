"""Properties of the pure placement engine over random topologies and random create/delete sequences."""

from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.fit import GPU_HOST, HostFree, NodeFree, Shape, apply_split, share_fits
from provisioning.placement import POLICIES, exhaustive_fit, place

GIB = 1024
RTX, OTHER = 1, 2
PLANS = [
    Shape(1, 8, 32 * GIB, RTX),
    Shape(2, 16, 64 * GIB, RTX),
    Shape(3, 20, 96 * GIB, RTX),
    Shape(4, 24, 128 * GIB, RTX),
]


@st.composite
def nodes(draw, host_id: int):
    count = draw(st.integers(1, 4))
    return tuple(
        NodeFree(
            node_id=host_id * 10 + index,
            index=index,
            free_gpus=draw(st.integers(0, 4)),
            free_cores=draw(st.integers(0, 16)),
            threads_per_core=draw(st.sampled_from([1, 2, 2])),
            free_memory_mib=draw(st.integers(0, 200)) * GIB,
            free_hugepages_1g=draw(st.integers(0, 100)),
            gpu_model_id=draw(st.sampled_from([RTX, RTX, RTX, OTHER])),
        )
        for index in range(count)
    )


@st.composite
def fleets(draw):
    count = draw(st.integers(0, 4))
    return [HostFree(h, f"h{h}", draw(nodes(h)), GPU_HOST) for h in range(1, count + 1)]


def assert_split_fits(shape: Shape, hosts: list[HostFree], split) -> None:
    host = next(h for h in hosts if h.host_id == split.host_id)
    by_id = {n.node_id: n for n in host.nodes}
    assert sum(s.gpus for s in split.shares) == shape.gpus
    assert sum(s.vcpus for s in split.shares) == shape.vcpus
    assert sum(s.memory_mib for s in split.shares) == shape.memory_mib
    for share in split.shares:
        node = by_id[share.node_id]
        assert node.gpu_model_id == shape.gpu_model_id
        assert share.gpus >= 1 and share.cores >= 1
        assert share_fits(node, share)
        assert share.cores * node.threads_per_core >= share.vcpus  # whole cores
        assert share.hugepages_1g <= node.free_hugepages_1g


@settings(max_examples=300, deadline=None)
@given(fleets(), st.sampled_from(PLANS), st.sampled_from(sorted(POLICIES)))
def test_a_request_is_rejected_only_when_the_exhaustive_search_finds_no_fit(hosts, shape, policy):
    split = place(shape, hosts, POLICIES[policy])
    reference = exhaustive_fit(shape, hosts)
    assert (split is None) == (reference is None)
    if split is not None:
        assert split.node_count == reference.node_count  # as few NUMA nodes as the region allows
        assert_split_fits(shape, hosts, split)


@settings(max_examples=100, deadline=None)
@given(fleets(), st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 50)), max_size=40))
def test_random_create_delete_sequences_never_overcommit_a_node(hosts, operations):
    """Placing and removing guests keeps every counter between zero and what the node had."""
    original = {n.node_id: n for h in hosts for n in h.nodes}
    current = {h.host_id: h for h in hosts}
    guests = []
    for create, plan, pick in operations:
        if create or not guests:
            shape = PLANS[plan]
            split = place(shape, list(current.values()))
            if split is None:
                assert exhaustive_fit(shape, list(current.values())) is None
                continue
            assert_split_fits(shape, list(current.values()), split)
            current[split.host_id] = apply_split(current[split.host_id], split)
            guests.append(split)
        else:
            split = guests.pop(pick % len(guests))
            current[split.host_id] = apply_split(current[split.host_id], split, sign=+1)
        for host in current.values():
            for node in host.nodes:
                before = original[node.node_id]
                assert 0 <= node.free_gpus <= before.free_gpus
                assert 0 <= node.free_cores <= before.free_cores
                assert 0 <= node.free_memory_mib <= before.free_memory_mib
                assert 0 <= node.free_hugepages_1g <= before.free_hugepages_1g
    for split in guests:
        current[split.host_id] = apply_split(current[split.host_id], split, sign=+1)
    assert {n.node_id: n for h in current.values() for n in h.nodes} == original
