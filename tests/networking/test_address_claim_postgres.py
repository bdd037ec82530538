"""The one-statement address claim on PostgreSQL: it locks the one row it takes, in pool order, passes
over rows another transaction holds, and waits for them only when nothing else is free."""

import threading

import psycopg2
import pytest
from django.db import connection, transaction

from networking.models import Ipv4Address, Ipv4Assignment
from networking.services import address_claim
from tests.builders import make_instance, make_pool, make_region, make_standard_plan

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LOCK_FIRST_FREE = (
    "SELECT host(address) FROM networking_ipv4address WHERE pool_id = %s AND holder_id IS NULL "
    "AND NOT reserved ORDER BY id LIMIT 1 FOR UPDATE NOWAIT"
)


def other_connection():
    """A second session on the test database, outside Django's connection handling."""
    params = connection.get_connection_params()
    other = psycopg2.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    other.autocommit = False
    return other


def three_pools():
    region = make_region("eu-pools", pool=False)
    pools = [make_pool(region=region, network=f"203.0.113.{base}/29") for base in (0, 8, 16)]
    return region, pools


def test_a_claim_takes_the_first_free_address_of_the_first_pool_and_locks_nothing_else():
    region, pools = three_pools()
    instance = make_instance(plan=make_standard_plan(), region=region)
    other = other_connection()
    try:
        with transaction.atomic():
            address = address_claim(instance=instance, region=region, new_instance=True)
            first = Ipv4Address.objects.filter(pool=pools[0], reserved=False).exclude(pk=address.pk)
            assert address.pool_id == pools[0].pk
            assert all(a.pk > address.pk for a in first)  # the lowest free id of the pool
            with other.cursor() as cursor:  # every other pool's first free row is free to lock
                for pool in pools[1:]:
                    cursor.execute(LOCK_FIRST_FREE, [pool.pk])
                    assert cursor.fetchone() is not None
            other.rollback()
        row = Ipv4Address.objects.get(pk=address.pk)
        assert (row.holder_id, row.held_since, row.free_after) == (instance.pk, address.held_since, None)
        assignment = Ipv4Assignment.objects.get(address=row)
        assert (assignment.instance_id, assignment.released_at) == (instance.pk, None)
        assert address.address == row.address and not address._state.adding
    finally:
        other.close()


def test_a_claim_passes_over_a_held_row_and_waits_for_held_rows_only_when_none_is_left():
    region, pools = three_pools()
    plan = make_standard_plan()
    other = other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute(LOCK_FIRST_FREE, [pools[0].pk])
            held_by_other = cursor.fetchone()[0]
        with transaction.atomic():
            passed_over = address_claim(instance=make_instance(plan=plan, region=region), region=region)
        assert passed_over.pool_id == pools[0].pk and passed_over.address != held_by_other
        other.rollback()

        # Every free row of every pool locked by the other session: the claim waits for it to end.
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM networking_ipv4address WHERE holder_id IS NULL AND NOT reserved "
                "AND pool_id = ANY(%s) ORDER BY id FOR UPDATE",
                [[pool.pk for pool in pools]],
            )
        waited: list = []

        def claim():
            try:
                with transaction.atomic():
                    waited.append(
                        address_claim(instance=make_instance(plan=plan, region=region), region=region)
                    )
            finally:
                connection.close()

        claimer = threading.Thread(target=claim)
        claimer.start()
        claimer.join(timeout=1.0)
        assert claimer.is_alive()  # waiting on the other session's locks, not refused
        other.rollback()
        claimer.join(timeout=30)
        assert not claimer.is_alive() and waited[0].address == held_by_other
    finally:
        other.close()
