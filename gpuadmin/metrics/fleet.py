"""Metrics read from the database at scrape time: the same numbers whichever server is scraped, and
whichever worker did the work. A fixed number of queries whatever the fleet size (tests assert it).

Job counts and durations are counters in the Prometheus sense: jobs are never deleted and a finished
job never changes, so the numbers only grow and `rate()` works on them.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone
from django.utils.module_loading import import_string
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from gpuadmin import health
from inventory.models import Host
from inventory.selectors import GpuCounts, region_capacity
from provisioning.models import Job

# Job durations (started -> finished, retries included): a power job takes seconds, a create with an
# image copy minutes.
JOB_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
GPU_STATES = GpuCounts.BUCKETS


class FleetCollector:
    """A prometheus_client collector; registered on a fresh registry for each scrape."""

    def describe(self) -> list[Metric]:
        return []  # nothing to read when registered: collect() queries the database

    def collect(self) -> Iterator[Metric]:
        yield from capacity_metrics()
        yield from host_metrics()
        yield from job_metrics()
        yield from worker_metrics()
        for path in settings.GPUADMIN_METRICS_PROVIDERS:
            yield from import_string(path)()


def capacity_metrics() -> Iterable[Metric]:
    gpus = GaugeMetricFamily(
        "gpuadmin_gpus", "GPUs by region, model and state (each card in exactly one state).",
        labels=["region", "model", "state"],
    )  # fmt: skip
    stranded = GaugeMetricFamily(
        "gpuadmin_gpus_stranded",
        "Free GPUs whose NUMA node has no cores or memory left for any plan of their model.",
        labels=["region", "model"],
    )
    sellable = GaugeMetricFamily(
        "gpuadmin_plan_sellable",
        "How many more instances of a plan can be placed now.",
        labels=["region", "plan"],
    )
    per_plan: dict[tuple[str, str], int] = defaultdict(int)
    for summary in region_capacity(with_hosts=False):
        if summary.kind == Host.Kind.GPU and summary.gpu_model:
            for state in GPU_STATES:
                gpus.add_metric([summary.region, summary.gpu_model, state], getattr(summary.gpus, state))
            stranded.add_metric([summary.region, summary.gpu_model], summary.gpus.stranded)
        for plan in summary.sellable:
            per_plan[(summary.region, plan.plan)] += plan.sellable
    for (region, plan), count in sorted(per_plan.items()):
        sellable.add_metric([region, plan], count)
    return [gpus, stranded, sellable]


def host_metrics() -> Iterable[Metric]:
    hosts = GaugeMetricFamily(
        "gpuadmin_hosts", "Hosts by region, kind and state.", labels=["region", "kind", "state"]
    )
    for row in Host.objects.order_by().values("region_id", "kind", "state").annotate(n=Count("id")):
        hosts.add_metric([row["region_id"], row["kind"], row["state"]], row["n"])
    errors = CounterMetricFamily(
        "gpuadmin_host_libvirt_errors",
        "Errors libvirt gave jobs, reconcile, card cleaning and syncs, by host.",
        labels=["host"],
    )
    for hostname, count in Host.objects.filter(libvirt_errors__gt=0).values_list(
        "hostname", "libvirt_errors"
    ):
        errors.add_metric([hostname], count)
    return [hosts, errors]


def job_metrics() -> Iterable[Metric]:
    took = ExpressionWrapper(F("finished") - F("started"), output_field=DurationField())
    timed = Q(finished__isnull=False, started__isnull=False)
    buckets = {
        f"le_{i}": Count("id", filter=timed & Q(took__lte=timedelta(seconds=seconds)))
        for i, seconds in enumerate(JOB_BUCKETS)
    }
    rows = (
        Job.objects.order_by()
        .alias(took=took)
        .values("action", "status")
        .annotate(
            n=Count("id"),
            timed=Count("id", filter=timed),
            seconds=Sum("took", filter=timed),
            oldest=Min("created"),
            **buckets,
        )
    )
    jobs = CounterMetricFamily("gpuadmin_jobs", "Jobs by action and status.", labels=["action", "status"])
    duration = HistogramMetricFamily(
        "gpuadmin_job_duration_seconds", "Time from a job's start to its end, by action and outcome.",
        labels=["action", "status"],
    )  # fmt: skip
    oldest = GaugeMetricFamily(
        "gpuadmin_job_oldest_in_flight_seconds",
        "Age of the oldest job not finished yet, by action and status (scheduled: waits for a worker).",
        labels=["action", "status"],
    )
    now = timezone.now()
    for row in rows:
        labels = [row["action"], row["status"]]
        jobs.add_metric(labels, row["n"])
        if row["status"] in Job.IN_FLIGHT:
            oldest.add_metric(labels, max(0.0, (now - row["oldest"]).total_seconds()))
        elif row["timed"]:
            counts = [(str(float(b)), row[f"le_{i}"]) for i, b in enumerate(JOB_BUCKETS)] + [
                ("+Inf", row["timed"])
            ]
            duration.add_metric(labels, counts, sum_value=_seconds(row["seconds"]))
    return [jobs, duration, oldest]


def _seconds(value) -> float:
    if value is None:
        return 0.0
    return value.total_seconds() if isinstance(value, timedelta) else float(value) / 1_000_000  # SQLite: µs


def worker_metrics() -> Iterable[Metric]:
    age = GaugeMetricFamily(
        "gpuadmin_worker_heartbeat_age_seconds",
        "Seconds since a worker last ran the scheduled heartbeat task.",
    )
    beat = health.heartbeat_age_seconds()
    if beat is not None:
        age.add_metric([], beat)
    queued = GaugeMetricFamily("gpuadmin_queue_tasks", "Tasks waiting in the broker for a worker.")
    try:
        queued.add_metric([], health.queued_tasks())
    except Exception:  # the broker is down: /healthz says so; the other metrics are still worth having
        pass
    return [age, queued]


__all__ = ["FleetCollector"]
