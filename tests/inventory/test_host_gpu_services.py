"""host_set_state, gpu_mark_faulty, gpu_return_to_service: the rules, the counters, the audit rows."""

import pytest

from accounts.models import AuditRecord
from inventory.exceptions import GpuBusy, InvalidStateChange
from inventory.models import GpuDevice, Host, NumaNode
from inventory.selectors import host_topology, id_ranges, topology_accounts
from inventory.services import gpu_mark_faulty, gpu_return_to_service, host_set_state
from tests.builders import make_allocation, make_gpu_host, make_gpu_plan, make_instance, make_user

pytestmark = pytest.mark.django_db


def test_host_state_changes_are_audited_and_enabling_clears_the_reason():
    host, actor = make_gpu_host(), make_user(staff=True)
    host_set_state(host=host, state=Host.State.MAINTENANCE, actor=actor, reason=" PSU swap ")
    host.refresh_from_db()
    assert (host.state, host.state_reason) == ("maintenance", "PSU swap")
    host_set_state(host=host, state=Host.State.ENABLED, actor=actor, reason="ignored")
    host.refresh_from_db()
    assert (host.state, host.state_reason) == ("enabled", "")
    assert list(AuditRecord.objects.order_by("id").values_list("action", "detail")) == [
        ("host.maintenance", "enabled -> maintenance: PSU swap"),
        ("host.enabled", "maintenance -> enabled"),
    ]


def test_an_unknown_host_state_is_refused():
    host = make_gpu_host()
    with pytest.raises(InvalidStateChange, match="'asleep' is not a host state"):
        host_set_state(host=host, state="asleep", actor=None)
    host.refresh_from_db()
    assert host.state == Host.State.ENABLED and not AuditRecord.objects.exists()


def test_a_held_gpu_is_refused_with_the_holder_and_nothing_changes():
    host = make_gpu_host()
    instance = make_instance(plan=make_gpu_plan(1))
    make_allocation(instance=instance, host=host, gpus=1, vcpus=8, memory_mib=32768)
    gpu = GpuDevice.objects.get(allocations__allocation__instance=instance)
    with pytest.raises(GpuBusy, match=f"is in use by instance {instance.pk}$"):
        gpu_mark_faulty(gpu=gpu, reason="ECC errors", actor=None)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE and not AuditRecord.objects.exists()


def test_faulty_and_back_keep_the_counters_exact():
    host = make_gpu_host()
    gpu = GpuDevice.objects.filter(host=host).order_by("pci_address").first()
    free = NumaNode.objects.get(pk=gpu.numa_node_id).free_gpus
    gpu_mark_faulty(gpu=gpu, reason="ECC errors", actor=None)
    assert NumaNode.objects.get(pk=gpu.numa_node_id).free_gpus == free - 1
    gpu_return_to_service(gpu=gpu, actor=None)
    assert NumaNode.objects.get(pk=gpu.numa_node_id).free_gpus == free


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (GpuDevice.State.CLEANING, "is being reset after its last guest; it returns by itself."),
        (GpuDevice.State.REMOVED, "is missing from the host; sync the host once the card is back."),
        (GpuDevice.State.AVAILABLE, "is already in service."),
    ],
)
def test_return_to_service_only_from_faulty_quarantined_or_reserved(state, message):
    gpu = GpuDevice.objects.filter(host=make_gpu_host()).first()
    GpuDevice.objects.filter(pk=gpu.pk).update(state=state)
    with pytest.raises(InvalidStateChange, match=message):
        gpu_return_to_service(gpu=gpu, actor=None)
    gpu.refresh_from_db()
    assert gpu.state == state


@pytest.mark.parametrize("state", [GpuDevice.State.QUARANTINED, GpuDevice.State.RESERVED])
def test_quarantined_and_reserved_cards_return_to_service(state):
    gpu = GpuDevice.objects.filter(host=make_gpu_host()).first()
    GpuDevice.objects.filter(pk=gpu.pk).update(state=state, state_reason="reset failed")
    assert gpu_return_to_service(gpu=gpu, actor=None).state == GpuDevice.State.AVAILABLE


def test_a_removed_card_is_not_marked_faulty():
    gpu = GpuDevice.objects.filter(host=make_gpu_host()).first()
    GpuDevice.objects.filter(pk=gpu.pk).update(state=GpuDevice.State.REMOVED)
    with pytest.raises(InvalidStateChange, match="is removed"):
        gpu_mark_faulty(gpu=gpu, reason="gone", actor=None)


def test_host_topology_names_the_holders(django_assert_max_num_queries):
    host = make_gpu_host(numa_nodes=2, gpus_per_node=2)
    instance = make_instance(plan=make_gpu_plan(2), label="holder")
    make_allocation(instance=instance, host=host, gpus=2, vcpus=16, memory_mib=65536)
    with django_assert_max_num_queries(3):
        nodes = host_topology(host=host)
    assert [n.index for n in nodes] == [0, 1]
    assert [g.holder_id for g in nodes[0].gpus] == [instance.pk, instance.pk]
    assert [g.holder_id for g in nodes[1].gpus] == [None, None]
    account = instance.account
    assert [(i, label, name) for i, label, _, name in nodes[0].held] == [
        (instance.pk, "holder", account.name)
    ]
    assert nodes[0].used_memory_mib == 65536 and nodes[0].free_cores == 14
    # Each thread and card says whose account holds it, for the colours.
    assert {g.account_id for g in nodes[0].gpus} == {account.pk}
    held_threads = [c for c in nodes[0].threads if c.account_id == account.pk]
    assert len(held_threads) == 16 and not any(c.reserved for c in held_threads)
    assert topology_accounts(nodes) == [(account.pk, account.name)]


def test_id_ranges():
    assert id_ranges([]) == ""
    assert id_ranges([5, 0, 1, 2, 8, 10, 11]) == "0-2,5,8,10-11"
