"""The claim's statements: the lock passes over hosts filled since the read, abandoned attempts unlock,
and prepared statements survive rollbacks and being planned again."""

import threading
import time

import pytest
from django.db import connection, transaction

from inventory.counters import gpu_set_state
from inventory.fit import Shape
from inventory.models import GpuDevice, Host, HostKind, NumaNode
from provisioning.claims import allocation_claim, rows
from provisioning.models import Allocation, Instance
from tests.builders import make_account, make_gpu_host, make_gpu_plan, make_region, unique

pytestmark = pytest.mark.django_db


def new_instance(plan, region):
    return Instance.objects.create(
        account=make_account(), label=unique("rows"), region=region, instance_type=plan
    )


def lock(hosts, **kwargs):
    """(host id, hostname) of the host locked, or None."""
    locked = rows.lock_first_host(
        host_ids=[host.pk for host in hosts], region_id=hosts[0].region_id, kind=HostKind.GPU, **kwargs
    )
    return locked and locked[:2]


def test_the_lock_passes_over_a_host_whose_counters_no_longer_fit_the_shape_alone():
    region = make_region()
    first, second = (make_gpu_host(region=region, numa_nodes=2, gpus_per_node=2) for _ in range(2))
    shape = Shape.of(make_gpu_plan(2))
    # Another claim took a GPU from each node of the first host after the candidates were read.
    NumaNode.objects.filter(host=first).update(free_gpus=1)

    with transaction.atomic():
        assert lock([first, second], wait=False, fits_alone=shape) == (second.pk, second.hostname)
    with transaction.atomic():
        assert lock([first], wait=False, fits_alone=shape) is None
        # Without the shape the lock only asks for an enabled host: the full check is the caller's.
        assert lock([first], wait=False) == (first.pk, first.hostname)


def test_the_lock_follows_the_order_it_is_given_and_skips_hosts_out_of_service():
    region = make_region()
    hosts = [make_gpu_host(region=region) for _ in range(3)]
    Host.objects.filter(pk=hosts[2].pk).update(state=Host.State.DRAINING)
    with transaction.atomic():
        assert lock([hosts[2], hosts[1], hosts[0]], wait=False)[0] == hosts[1].pk
        assert lock([hosts[0], hosts[1]], wait=False)[0] == hosts[0].pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_abandoned_attempt_unlocks_its_host_for_other_claims_at_once():
    host = make_gpu_host()
    locked, tried, abandoned = threading.Event(), threading.Event(), threading.Event()
    seen_by_other: list = []

    def other_claim() -> None:
        try:
            locked.wait(timeout=30)
            with transaction.atomic():
                seen_by_other.append(lock([host], wait=False))
            tried.set()
            abandoned.wait(timeout=30)
            with transaction.atomic():
                seen_by_other.append(lock([host], wait=False))
        finally:
            connection.close()

    thread = threading.Thread(target=other_claim)
    thread.start()
    with transaction.atomic():
        assert lock([host], wait=False) is not None
        locked.set()
        tried.wait(timeout=30)
        rows.abandon_attempt()
        abandoned.set()
        thread.join(timeout=30)
    # Locked: passed over. Abandoned, while this transaction goes on: locked by the other claim.
    assert seen_by_other == [None, (host.pk, host.hostname)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_prepared_statements_survive_a_rolled_back_claim_and_being_planned_again(monkeypatch):
    monkeypatch.setattr(rows, "REPLAN_AFTER", 2)
    region = make_region()
    make_gpu_host(region=region, numa_nodes=2, gpus_per_node=4, cores_per_node=24)
    plan = make_gpu_plan(1)
    connection.close()  # a connection that has prepared nothing yet

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        allocation_claim(instance=new_instance(plan, region), plan=plan, region=region)
        raise Abandon
    assert not Allocation.objects.exists()

    for _ in range(5):  # planned again twice on the way
        allocation_claim(instance=new_instance(plan, region), plan=plan, region=region)
    assert Allocation.objects.filter(released_at__isnull=True).count() == 5
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, generic_plans FROM pg_prepared_statements WHERE name LIKE 'gpuadmin_claim_%%'"
        )
        prepared = dict(cursor.fetchall())
    # Each statement is prepared once per connection, with a generic plan, and at most REPLAN_AFTER
    # executions ago.
    assert prepared and all(1 <= uses <= 2 for uses in prepared.values())


def test_the_lock_reads_what_the_host_holds_in_the_same_statement():
    host = make_gpu_host()
    with transaction.atomic():
        host_id, _, held = rows.lock_first_host(
            host_ids=[host.pk], region_id=host.region_id, kind=HostKind.GPU, wait=False
        )
        fresh = rows.host_rows(host_id=host_id)
    if connection.vendor == "postgresql":
        assert held == fresh and len(held.gpus) == 4 and len(held.nodes) == 2
    else:  # SQLite reads in a statement of its own
        assert held is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_read_older_than_the_lock_it_came_with_is_not_trusted():
    host = make_gpu_host()
    card = GpuDevice.objects.filter(host=host).order_by("pci_address").first()
    changing, started = threading.Event(), threading.Event()

    def operator_marks_the_card_faulty() -> None:
        try:
            with transaction.atomic():
                Host.objects.select_for_update().get(pk=host.pk)
                gpu_set_state(gpu=card, state=GpuDevice.State.FAULTY, reason="xid 79")
                changing.set()
                started.wait(timeout=30)  # then commits, while the claim's statement waits for the lock
        finally:
            connection.close()

    def claim_attempt(outcome: list) -> None:
        try:
            with transaction.atomic():
                locked = rows.lock_first_host(
                    host_ids=[host.pk], region_id=host.region_id, kind=HostKind.GPU, wait=True
                )
                outcome += [locked, rows.host_rows(host_id=host.pk)]
        finally:
            connection.close()

    operator = threading.Thread(target=operator_marks_the_card_faulty)
    operator.start()
    changing.wait(timeout=30)
    outcome: list = []
    claimant = threading.Thread(target=claim_attempt, args=(outcome,))
    claimant.start()
    wait_until_a_claim_waits_for_a_lock()
    started.set()
    for thread in (operator, claimant):
        thread.join(timeout=60)
    assert not operator.is_alive() and not claimant.is_alive()
    (host_id, _, held), fresh = outcome
    # The statement began before the operator committed and got the lock after: its own read still
    # shows the card available, so it is not handed back; the read after the lock shows it faulty.
    assert held is None
    states = {gpu[0]: gpu[3] for gpu in fresh.gpus}
    assert states[card.pk] == GpuDevice.State.FAULTY


def wait_until_a_claim_waits_for_a_lock() -> None:
    for _ in range(3000):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE %s AND pid <> pg_backend_pid()",
                ["%gpuadmin_claim_%"],
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.01)
    raise AssertionError("the claim never waited for the host lock")
