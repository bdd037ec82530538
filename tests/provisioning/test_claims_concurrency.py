"""Many clients race for more than a region holds: exactly the capacity wins, nobody gets a GPU twice."""

import threading
import time
from collections import Counter
from functools import partial

import pytest
from django.db import connection, transaction
from django.db.models import Count

from inventory.counters import numa_counters_recount
from inventory.fleet import fleet_seed
from inventory.models import Host
from inventory.selectors import region_capacity
from provisioning.claims import allocation_claim
from provisioning.exceptions import NoCapacity
from provisioning.models import AllocatedCpu, AllocatedGpu, Allocation, Instance
from tests.builders import make_account, make_gpu_plan, make_region
from tests.concurrency import race as concurrently

THREADS = 32
ROUNDS = 20


def race(plan, region, instances):
    claims = [
        partial(allocation_claim, instance=instance, plan=plan, region=region) for instance in instances
    ]
    return concurrently(claims, what="a claim")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_claims_win_exactly_the_capacity_and_every_loser_hears_no_capacity():
    account = make_account()
    for round_number in range(ROUNDS):
        region = make_region(f"race-{round_number}", label=f"Race {round_number}")
        fleet_seed(region=region, count=3, profile="rtx6000-2x2")
        hosts = list(Host.objects.filter(region=region))
        generations = sum(host.generation for host in hosts)
        # 1-, 2- and 3-GPU plans in turn: the 3-GPU plan spans both nodes of a demo host.
        plan = make_gpu_plan(1 + round_number % 3)
        (summary,) = region_capacity(region=region)
        capacity = next(p.sellable for p in summary.sellable if p.plan == plan.id)
        assert capacity == {1: 12, 2: 6, 3: 3}[plan.gpus]
        instances = [
            Instance.objects.create(
                account=account, label=f"r{round_number}-c{i}", region=region, instance_type=plan
            )
            for i in range(THREADS)
        ]

        outcomes = race(plan, region, instances)

        kinds = Counter(type(o).__name__ for o in outcomes)
        assert kinds == {"Allocation": capacity, "NoCapacity": THREADS - capacity}, (round_number, outcomes)
        for refused in (o for o in outcomes if isinstance(o, NoCapacity)):
            assert region.id in refused.detail and plan.id in refused.detail
        active = AllocatedGpu.objects.filter(released_at__isnull=True, allocation__host__region=region)
        assert active.count() == capacity * plan.gpus
        assert not active.values("gpu").annotate(n=Count("id")).filter(n__gt=1).exists()
        cpus = AllocatedCpu.objects.filter(released_at__isnull=True, allocation__host__region=region)
        assert not cpus.values("cpu").annotate(n=Count("id")).filter(n__gt=1).exists()
        for allocation in Allocation.objects.filter(host__region=region):
            assert allocation.gpus.count() == plan.gpus and allocation.cpus.count() == plan.vcpus
        for host in hosts:
            assert numa_counters_recount(host=host) == []
        # One bump per claim, and none from the recounts, which found nothing to repair.
        assert sum(Host.objects.filter(region=region).values_list("generation", flat=True)) == (
            generations + capacity
        )


def hold_host_lock(host_id: int, locked: threading.Event, release: threading.Event) -> threading.Thread:
    """Another transaction that holds a host's lock until told to let go."""

    def holder() -> None:
        try:
            with transaction.atomic():
                Host.objects.select_for_update().get(pk=host_id)
                locked.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    assert locked.wait(timeout=10)
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_passes_over_a_host_someone_holds_and_waits_only_when_nothing_else_is_left():
    region = make_region("hold")
    fleet_seed(region=region, count=2, profile="rtx6000-2x2")
    first, second = Host.objects.filter(region=region).order_by("pk")
    plan = make_gpu_plan(4)  # a whole demo host: each host takes exactly one
    account = make_account()

    def instance(label):
        return Instance.objects.create(account=account, label=label, region=region, instance_type=plan)

    locked, release = threading.Event(), threading.Event()
    holder = hold_host_lock(first.pk, locked, release)
    started = time.monotonic()
    assert allocation_claim(instance=instance("passes-over"), plan=plan, region=region).host_id == second.pk
    assert time.monotonic() - started < 5  # it did not queue behind the holder
    release.set()
    holder.join()

    locked, release = threading.Event(), threading.Event()
    holder = hold_host_lock(first.pk, locked, release)
    threading.Timer(1.0, release.set).start()
    allocation = allocation_claim(instance=instance("waits"), plan=plan, region=region)
    assert allocation.host_id == first.pk  # the only candidate left: waited for, not refused
    holder.join()
