"""usage_sync turns provisioning's rows into usage segments, and only what a customer should pay for."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from billing.models import UsageSegment
from billing.services import usage_sync
from provisioning.models import Job
from tests.billing.helpers import at, created_instance, deleted, resized

pytestmark = pytest.mark.django_db

CREATED = at("2026-01-05 10:00")


def spans(instance):
    return [
        (s.instance_type_id, s.started_at, s.ended_at, s.price_hourly)
        for s in UsageSegment.objects.filter(instance=instance).order_by("started_at")
    ]


def test_a_segment_opens_at_creation_with_the_rates_of_the_day(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED)
    report = usage_sync(now=at("2026-01-06 00:00"))
    assert (report.opened, report.closed, report.problems) == (1, 0, [])
    # A price change later does not re-price usage that began before it.
    gpu1.price_hourly = Decimal("9.99")
    gpu1.save()
    usage_sync(now=at("2026-01-07 00:00"))
    assert spans(instance) == [(gpu1.pk, CREATED, None, Decimal("1.5000"))]
    segment = UsageSegment.objects.get(instance=instance)
    assert segment.account == customer and segment.price_monthly == Decimal("1000.00")


def test_running_twice_changes_nothing(customer, gpu1, gpu2):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED)
    resized(instance, to=gpu2, finished=at("2026-01-06 12:00"))
    deleted(instance, when=at("2026-01-08 00:00"))
    first = usage_sync(now=at("2026-01-09 00:00"))
    rows = list(UsageSegment.objects.values())
    second = usage_sync(now=at("2026-01-09 00:00"))
    assert (first.opened, first.closed) == (2, 0)
    assert (second.opened, second.closed, second.problems) == (0, 0, [])
    assert list(UsageSegment.objects.values()) == rows


def test_a_resize_closes_the_segment_and_opens_the_next_when_the_job_finishes(customer, gpu1, gpu2):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED)
    usage_sync(now=at("2026-01-06 00:00"))
    job = resized(instance, to=gpu2, finished=at("2026-01-06 12:00"))
    report = usage_sync(now=at("2026-01-07 00:00"))
    assert (report.opened, report.closed) == (1, 1)
    assert spans(instance) == [
        (gpu1.pk, CREATED, at("2026-01-06 12:00"), Decimal("1.5000")),
        (gpu2.pk, at("2026-01-06 12:00"), None, Decimal("3.0000")),
    ]
    first, second = UsageSegment.objects.filter(instance=instance).order_by("started_at")
    assert second.previous == first and second.job == job


def test_a_failed_resize_that_rolled_back_keeps_one_segment(customer, gpu1, gpu2):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED)
    resized(instance, to=gpu2, finished=at("2026-01-06 12:00"), status=Job.Status.FAILED)
    usage_sync(now=at("2026-01-07 00:00"))
    assert spans(instance) == [(gpu1.pk, CREATED, None, Decimal("1.5000"))]


def test_delete_closes_the_last_segment_and_the_instance_drops_out_of_later_syncs(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED)
    usage_sync(now=at("2026-01-06 00:00"))
    deleted(instance, when=at("2026-01-06 10:00"))
    assert usage_sync(now=at("2026-01-07 00:00")).closed == 1
    assert spans(instance) == [(gpu1.pk, CREATED, at("2026-01-06 10:00"), Decimal("1.5000"))]
    from billing.selectors import instances_to_sync

    assert instance not in instances_to_sync(now=at("2026-01-08 00:00"))


def test_a_failed_create_is_never_billed(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED, create=Job.Status.FAILED)
    usage_sync(now=at("2026-01-06 00:00"))
    deleted(instance, when=at("2026-01-06 01:00"))
    usage_sync(now=at("2026-01-07 00:00"))
    assert not UsageSegment.objects.filter(instance=instance).exists()


def test_a_create_in_flight_is_billed_from_creation_once_it_succeeds(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED, create=Job.Status.STARTED)
    usage_sync(now=at("2026-01-05 10:01"))
    assert spans(instance) == []
    Job.objects.filter(instance=instance).update(status=Job.Status.FINISHED, finished=at("2026-01-05 10:03"))
    usage_sync(now=at("2026-01-05 11:00"))
    assert spans(instance) == [(gpu1.pk, CREATED, None, Decimal("1.5000"))]


def test_a_sync_never_rewrites_a_segment_that_contradicts_provisioning(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED)
    usage_sync(now=at("2026-01-06 00:00"))
    type(instance).objects.filter(pk=instance.pk).update(created=CREATED - timedelta(days=1))
    report = usage_sync(now=at("2026-01-07 00:00"))
    assert len(report.problems) == 1 and f"instance {instance.pk}" in report.problems[0]
    assert spans(instance) == [(gpu1.pk, CREATED, None, Decimal("1.5000"))]


def _segment(instance, plan, start, end=None, previous=None):
    return UsageSegment(
        account=instance.account,
        instance=instance,
        instance_type=plan,
        price_hourly=plan.price_hourly,
        price_monthly=plan.price_monthly,
        started_at=start,
        ended_at=end,
        piece_count=None if end is None else 1,
        previous=previous,
    )


def test_the_database_refuses_a_second_open_segment_a_fork_and_time_running_backwards(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=CREATED)
    usage_sync(now=at("2026-01-06 00:00"))
    first = UsageSegment.objects.get(instance=instance)
    refused = [
        _segment(instance, gpu1, at("2026-01-07 00:00"), previous=first),  # a second open one
        _segment(instance, gpu1, at("2026-01-07 00:00"), at("2026-01-08 00:00")),  # a second first one
        _segment(instance, gpu1, CREATED, at("2026-01-08 00:00"), previous=first),  # same start
        _segment(
            instance, gpu1, at("2026-01-09 00:00"), at("2026-01-08 00:00"), previous=first
        ),  # end < start
    ]
    for row in refused:
        with pytest.raises(IntegrityError), transaction.atomic():
            row.save()
    assert UsageSegment.objects.filter(instance=instance).count() == 1
