"""Pools: a row per host address, the gateway and reserved ranges never handed out, bad pools refused."""

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from networking.exceptions import PoolInvalid
from networking.models import Ipv4Address, Ipv4Assignment, Ipv4Pool
from networking.selectors import pool_usage
from networking.services import pool_create, pool_update
from tests.builders import make_instance, make_region, make_standard_plan

pytestmark = pytest.mark.django_db


def test_a_pool_has_a_row_per_host_address_and_the_gateway_is_reserved():
    region = make_region("eu-west", pool=False)
    pool = pool_create(region=region, network="203.0.113.0/28", reserved="203.0.113.10-203.0.113.12\n# ops\n")
    addresses = list(pool.addresses.order_by("id").values_list("address", "reserved"))
    assert [a for a, _ in addresses] == [f"203.0.113.{n}" for n in range(1, 15)]
    assert {a for a, reserved in addresses if reserved} == {
        "203.0.113.1", "203.0.113.10", "203.0.113.11", "203.0.113.12",
    }  # fmt: skip
    assert (pool.gateway, pool.prefix_length, pool.netmask) == ("203.0.113.1", 28, "255.255.255.240")
    (usage,) = pool_usage(region="eu-west")
    assert (usage.total, usage.reserved, usage.held, usage.cooling, usage.free) == (14, 4, 0, 0, 10)


def test_changing_the_reserved_ranges_marks_the_rows():
    pool = pool_create(region=make_region("eu-west", pool=False), network="203.0.113.0/29")
    pool_update(pool=pool, gateway="203.0.113.6", reserved="203.0.113.2")
    reserved = set(pool.addresses.filter(reserved=True).values_list("address", flat=True))
    assert reserved == {"203.0.113.6", "203.0.113.2"}


@pytest.mark.parametrize(
    ("network", "gateway", "reserved", "field", "says"),
    [
        ("203.0.113.5/24", None, "", "network", "not an IPv4 network"),
        ("203.0.113.0/8", None, "", "network", "not an IPv4 network"),
        ("10.0.0.0/8", None, "", "prefix_length", "greater than or equal to 16"),
        ("203.0.113.0/31", None, "", "prefix_length", "less than or equal to 30"),
        ("203.0.113.0/24", "198.51.100.1", "", "gateway", "not a host address of 203.0.113.0/24"),
        ("203.0.113.0/24", None, "203.0.114.1", "reserved", "not inside 203.0.113.0/24"),
        ("203.0.113.0/24", None, "203.0.113.9-203.0.113.2", "reserved", "ends before it starts"),
        ("203.0.113.0/24", None, "nonsense", "reserved", "not an address"),
    ],
)
def test_a_bad_pool_is_refused_with_its_field_and_nothing_is_written(network, gateway, reserved, field, says):
    region = make_region("eu-west", pool=False)
    with pytest.raises(PoolInvalid) as refused:
        pool_create(region=region, network=network, gateway=gateway, reserved=reserved)
    assert refused.value.field == field and says in refused.value.message
    assert not Ipv4Pool.objects.exists() and not Ipv4Address.objects.exists()


def test_overlapping_pools_are_refused():
    pool_create(region=make_region("eu-west", pool=False), network="203.0.113.0/24")
    with pytest.raises(PoolInvalid, match="overlaps 203.0.113.0/24 of eu-west"):
        pool_create(region=make_region("eu-central", pool=False), network="203.0.113.128/25")


def test_the_database_refuses_two_active_holders_of_one_address_and_two_addresses_for_one_instance():
    region = make_region("eu-west", pool=False)
    pool = pool_create(region=region, network="203.0.113.0/29")
    first, second = pool.addresses.filter(reserved=False)[:2]
    plan = make_standard_plan()
    one, two = make_instance(plan=plan, region=region), make_instance(plan=plan, region=region)
    now = timezone.now()
    Ipv4Assignment.objects.create(address=first, instance=one, assigned_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Ipv4Assignment.objects.create(address=first, instance=two, assigned_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Ipv4Assignment.objects.create(address=second, instance=one, assigned_at=now)
    Ipv4Address.objects.filter(pk=first.pk).update(holder=one, held_since=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Ipv4Address.objects.filter(pk=second.pk).update(holder=one, held_since=now)
    with pytest.raises(IntegrityError), transaction.atomic():  # held while cooling down
        Ipv4Address.objects.filter(pk=first.pk).update(free_after=now)
    # A released assignment is history: the address may be held again.
    Ipv4Assignment.objects.filter(instance=one).update(released_at=now)
    Ipv4Assignment.objects.create(address=first, instance=two, assigned_at=now)
