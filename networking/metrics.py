"""Prometheus families read at scrape time (wired through GPUADMIN_METRICS_PROVIDERS): one query."""

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from networking.selectors import pool_usage


def address_metrics() -> Iterable[Metric]:
    addresses = GaugeMetricFamily(
        "gpuadmin_pool_addresses",
        "IPv4 addresses per pool by state: held, free (may be handed out now), cooling (released, in "
        "their cool-down), reserved (gateway and reserved ranges).",
        labels=["region", "pool", "state"],
    )
    free = GaugeMetricFamily(
        "gpuadmin_pool_free_addresses",
        "IPv4 addresses a create may take now, per pool.",
        labels=["region", "pool"],
    )
    for usage in pool_usage():
        for state in ("held", "free", "cooling", "reserved"):
            addresses.add_metric([usage.region, usage.pool, state], getattr(usage, state))
        free.add_metric([usage.region, usage.pool], usage.free)
    return [addresses, free]
