"""32 creates race for fewer addresses than they ask for while released addresses come back: no address
is ever held by two live instances, no instance holds two, and every loser hears the pool is empty."""

from collections import Counter

import pytest
from django.db import transaction
from django.db.models import Count
from django.test import override_settings

from accounts.models import Account
from inventory.fleet import fleet_seed
from networking.models import Ipv4Address, Ipv4Assignment
from networking.services import addresses_release
from provisioning import jobs
from provisioning.exceptions import NoCapacity
from provisioning.models import Instance
from tests.builders import make_account, make_gpu_plan, make_image, make_pool, make_region, make_user
from tests.concurrency import race as concurrently
from tests.provisioning.helpers import create

THREADS = 32
RELEASERS = 8
ROUNDS = 5
FREE = 20  # a /27 has 30 host addresses: the gateway and 9 reserved are never handed out


def race(calls):
    return concurrently(calls, what="a create")


def release(instance: Instance):
    """A delete's last transaction, as far as addresses go: released, and the instance gone."""

    def call():
        with transaction.atomic():
            addresses_release(instance=instance)
            Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.DELETED, ipv4=[])
        return "released"

    return call


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@override_settings(GPUADMIN_ADDRESS_COOLDOWN_SECONDS=0)
def test_racing_creates_never_share_an_address(monkeypatch):
    # The race is the create transaction; what the jobs then do on a host is tested elsewhere.
    monkeypatch.setattr(jobs, "async_task", lambda *args, **kwargs: None)
    user = make_user(account=make_account(kind=Account.Kind.EMPLOYEE))
    plan, image = make_gpu_plan(1), make_image()
    for round_number in range(ROUNDS):
        region = make_region(f"ip-race-{round_number}", pool=False)
        block = f"198.18.{round_number}"
        make_pool(region=region, network=f"{block}.0/27", reserved=f"{block}.22-{block}.30")
        fleet_seed(region=region, count=10, profile="rtx6000-2x2")  # 40 one-GPU slots: GPUs never run out
        old = [create(user=user, plan=plan, region=region, image=image) for _ in range(RELEASERS)]

        def creator(region=region):
            return create(user=user, plan=plan, region=region, image=image)

        outcomes = race([creator] * THREADS + [release(instance) for instance in old])

        kinds = Counter(type(o).__name__ for o in outcomes)
        assert kinds["str"] == RELEASERS, outcomes
        assert kinds["Instance"] + kinds["NoCapacity"] == THREADS, outcomes
        # At least what was free before the race is taken; at most what was free after it.
        assert FREE - RELEASERS <= kinds["Instance"] <= FREE, kinds
        for refused in (o for o in outcomes if isinstance(o, NoCapacity)):
            assert refused.detail == f"{region.id} has no free public IPv4 address"
        live = Instance.objects.filter(region=region).exclude(status=Instance.Status.DELETED)
        assert live.count() == kinds["Instance"]
        held = Ipv4Address.objects.filter(pool__region=region, holder__isnull=False)
        assert held.count() == kinds["Instance"]
        assert {a.holder_id: [a.address] for a in held} == {i.pk: i.ipv4 for i in live}
        active = Ipv4Assignment.objects.filter(address__pool__region=region, released_at__isnull=True)
        assert not active.values("address").annotate(n=Count("id")).filter(n__gt=1).exists()
        assert not active.values("instance").annotate(n=Count("id")).filter(n__gt=1).exists()
        assert set(active.values_list("instance_id", "address__address")) == {
            (a.holder_id, a.address) for a in held
        }
        assert not held.filter(reserved=True).exists()
