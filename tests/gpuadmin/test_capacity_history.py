"""Capacity over time: a sample per region and GPU model every 15 minutes, thinned with age, drawn by the
dashboard and written as CSV by capacity_report --history."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from inventory.counters import gpu_set_state
from inventory.models import CapacitySample, GpuDevice, Host
from inventory.selectors import region_capacity
from inventory.services import (
    RETENTION,
    capacity_sample_record,
    capacity_samples_thin,
    host_set_state,
    sample_slot,
)
from tests.builders import make_allocation, make_gpu_host, make_instance, make_region

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 12, 7, 31, tzinfo=UTC)


def test_a_migration_schedules_the_sample_every_15_minutes():
    schedule = Schedule.objects.get(func="inventory.tasks.capacity_sample")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 15, -1)


def test_a_sample_holds_region_capacity_numbers_per_region_and_model(fleet):
    instance = make_instance(plan=fleet.plans[2], region=fleet.region)
    make_allocation(instance=instance, host=fleet.hosts[0], gpus=2, vcpus=16, memory_mib=64 * 1024)
    gpu_set_state(gpu=GpuDevice.objects.filter(host=fleet.hosts[1]).first(), state=GpuDevice.State.CLEANING)
    make_gpu_host(region=make_region("ap-west", "Mumbai, IN", "in"))

    samples = capacity_sample_record(now=NOW)

    assert {(s.region_id, s.gpu_model.short_name) for s in samples} == {
        ("us-east", "RTX 6000"),
        ("ap-west", "RTX 6000"),
    }
    sample = CapacitySample.objects.get(region="us-east")
    assert sample.recorded_at == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the slot's start
    [summary] = [s for s in region_capacity(region="us-east", with_hosts=False) if s.kind == "gpu"]
    counts = (sample.total, sample.allocated, sample.free, sample.cleaning, sample.quarantined)
    assert counts == (8, 2, 5, 1, 0)
    assert sample.stranded == summary.gpus.stranded
    assert sample.sellable == {p.plan: p.sellable for p in summary.sellable}
    assert sample.sellable["g1-gpu-rtx6000-4"] == 0 and sample.sellable["g1-gpu-rtx6000-1"] == 5


def test_sampling_twice_in_one_slot_keeps_one_row_with_the_later_numbers(fleet):
    capacity_sample_record(now=NOW)
    host_set_state(host=fleet.hosts[1], state=Host.State.DRAINING, actor=None, reason="test")
    capacity_sample_record(now=NOW + timedelta(minutes=5))

    sample = CapacitySample.objects.get()
    assert (sample.free, sample.host_out_of_service, sample.hosts_enabled) == (4, 4, 1)


def test_the_scheduled_task_records_through_the_queue(fleet):
    async_task("inventory.tasks.capacity_sample")  # sync in tests: runs now, as the worker would

    assert CapacitySample.objects.filter(region="us-east", total=8).count() == 1


def test_the_database_refuses_a_sample_whose_buckets_do_not_add_up(fleet):
    sample = capacity_sample_record(now=NOW)[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        CapacitySample.objects.filter(pk=sample.pk).update(free=sample.free + 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        CapacitySample.objects.create(
            region_id=sample.region_id, gpu_model_id=sample.gpu_model_id, recorded_at=sample.recorded_at
        )


def test_old_samples_are_thinned_and_the_oldest_dropped(fleet):
    """40 days of 15-minute samples become every slot for 2 days, hourly to 8, six-hourly to 35."""
    template = capacity_sample_record(now=NOW)[0]
    now = template.recorded_at
    CapacitySample.objects.all().delete()
    CapacitySample.objects.bulk_create(
        CapacitySample(
            region_id=template.region_id,
            gpu_model_id=template.gpu_model_id,
            recorded_at=now - timedelta(minutes=15 * i),
            total=8,
            free=8,
        )
        for i in range(40 * 96)
    )

    capacity_samples_thin(now=now)

    times = sorted(CapacitySample.objects.values_list("recorded_at", flat=True))
    ages = [now - t for t in times]
    assert max(ages) <= RETENTION
    recent = [a for a in ages if a < timedelta(days=2)]
    hourly = [a for a in ages if timedelta(days=2) <= a < timedelta(days=8)]
    six_hourly = [a for a in ages if a >= timedelta(days=8)]
    assert len(recent) == 2 * 96  # every slot
    assert len(hourly) == 6 * 24
    assert len(six_hourly) == 27 * 4 + 1  # 8 days to 35 days, both ends
    assert all(t.minute == 0 for t in times if now - t >= timedelta(days=2))
    assert all(t.hour % 6 == 0 for t in times if now - t >= timedelta(days=8))
    assert len(times) == 445  # bounded, however long the schedule runs
    assert capacity_samples_thin(now=now) == 0  # thinning twice changes nothing


def test_a_series_stays_bounded_as_the_schedule_runs_for_weeks(fleet):
    """The record call itself thins: 45 days of runs every 15 minutes keep under 450 rows."""
    start = NOW - timedelta(days=45)
    for i in range(45 * 96):
        if i % 96 == 0 or i > 44 * 96:  # a run a day, then every run of the last day
            capacity_sample_record(now=start + timedelta(minutes=15 * i))
    assert CapacitySample.objects.count() <= 450
    last = CapacitySample.objects.latest("recorded_at").recorded_at
    assert CapacitySample.objects.filter(recorded_at__lt=last - RETENTION).count() == 0
    assert CapacitySample.objects.filter(recorded_at__gte=last - timedelta(days=1)).count() == 96


def _record_three_hours_of_changes(fleet) -> list[datetime]:
    """Samples an hour apart over the last three hours, the fleet changing between them."""
    now = timezone.now()
    capacity_sample_record(now=now - timedelta(hours=3))
    instance = make_instance(plan=fleet.plans[1], region=fleet.region)
    make_allocation(instance=instance, host=fleet.hosts[0], gpus=1, vcpus=8, memory_mib=32 * 1024)
    capacity_sample_record(now=now - timedelta(hours=2))
    gpu_set_state(
        gpu=GpuDevice.objects.filter(host=fleet.hosts[1]).first(),
        state=GpuDevice.State.QUARANTINED,
        reason="reset failed",
    )
    capacity_sample_record(now=now - timedelta(hours=1))
    return [sample_slot(now - timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%S") for h in (3, 2, 1)]


def test_capacity_report_history_is_csv_of_the_samples(fleet, capsys):
    times = _record_three_hours_of_changes(fleet)

    call_command("capacity_report", "--history")

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["recorded_at"], r["allocated"], r["free"], r["quarantined"]) for r in rows] == [
        (times[0], "0", "8", "0"),
        (times[1], "1", "7", "0"),
        (times[2], "1", "6", "1"),
    ]
    assert rows[0]["sellable:g1-gpu-rtx6000-4"] == "2" and rows[1]["sellable:g1-gpu-rtx6000-4"] == "1"
    assert rows[0]["region"] == "us-east" and rows[0]["gpu_model"] == "RTX 6000"


def test_the_dashboard_charts_draw_the_same_numbers_as_the_csv(client, fleet, superuser, capsys):
    _record_three_hours_of_changes(fleet)
    call_command("capacity_report", "--history", "--window", "24h")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    client.force_login(superuser)

    html = client.get(reverse("admin:index") + "?window=24h").content.decode()

    panel = re.search(
        r'<section class="panel" data-region="us-east" data-model="RTX 6000">(.*?)</section>', html, re.S
    )
    assert panel, "no chart panel for us-east RTX 6000"
    gpus, sellable = re.findall(r'<svg class="chart"[^>]*data-times="([^"]*)"', panel[1])
    assert gpus.split() == [r["recorded_at"][:16] for r in rows] == sellable.split()
    drawn = dict(re.findall(r'data-series="([^"]+)" data-values="([^"]*)"', panel[1]))
    for name in ("allocated", "free", "stranded", "cleaning", "quarantined"):
        assert drawn[name].split() == [r[name] for r in rows], name
    for plan in fleet.plans.values():
        assert drawn[plan.id].split() == [r[f"sellable:{plan.id}"] for r in rows], plan.id
    assert 'class="current">24h<' in html and 'href="?window=30d"' in html


def test_the_chart_window_decides_which_samples_are_drawn(client, fleet, superuser):
    capacity_sample_record(now=datetime.now(UTC) - timedelta(days=3))
    capacity_sample_record(now=datetime.now(UTC) - timedelta(hours=1))
    client.force_login(superuser)

    def drawn(window: str) -> int:
        html = client.get(reverse("admin:index"), {"window": window}).content.decode()
        return len(re.search(r'data-times="([^"]*)"', html)[1].split())

    assert (drawn("24h"), drawn("7d"), drawn("30d"), drawn("nonsense")) == (1, 2, 2, 1)


def test_the_dashboard_says_when_there_are_no_samples_yet(client, fleet, superuser):
    client.force_login(superuser)
    html = client.get(reverse("admin:index")).content.decode()
    assert "No capacity samples in the last 24h" in html
