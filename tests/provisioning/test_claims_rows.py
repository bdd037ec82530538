"""The claim's statements: the lock passes over hosts filled since the read, abandoned attempts unlock,
and prepared statements survive rollbacks and being planned again."""

import threading

import pytest
from django.db import connection, transaction

from inventory.fit import Shape
from inventory.models import Host, HostKind, NumaNode
from provisioning.claims import allocation_claim, rows
from provisioning.models import Allocation, Instance
from tests.builders import make_account, make_gpu_host, make_gpu_plan, make_region, unique

pytestmark = pytest.mark.django_db


def new_instance(plan, region):
    return Instance.objects.create(
        account=make_account(), label=unique("rows"), region=region, instance_type=plan
    )


def lock(hosts, **kwargs):
    return rows.lock_first_host(
        host_ids=[host.pk for host in hosts], region_id=hosts[0].region_id, kind=HostKind.GPU, **kwargs
    )


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
