import csv
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from inventory.counters import numa_counters_recount
from inventory.models import Host, Region
from inventory.selectors import CAPACITY_WINDOWS, GpuCounts, capacity_history, region_capacity
from inventory.services import CAPACITY_SAMPLE_COUNTS
from networking.selectors import pool_usage


class Command(BaseCommand):
    help = (
        "GPU capacity per region and model: total, allocated, free, stranded, out of service, and how "
        "many more of each plan can be sold now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--region", help="Only this region.")
        parser.add_argument("--hosts", action="store_true", help="Also one line per host.")
        parser.add_argument("--json", action="store_true", help="One JSON document instead of text.")
        parser.add_argument(
            "--recount",
            action="store_true",
            help="First rebuild the NUMA counters from the rows and list drift.",
        )
        parser.add_argument(
            "--history",
            action="store_true",
            help="The recorded samples (every 15 minutes, thinned with age) as CSV, one row per region, "
            "GPU model and time: the numbers the dashboard's charts draw.",
        )
        parser.add_argument(
            "--window", choices=sorted(CAPACITY_WINDOWS), default="30d", help="With --history: how far back."
        )

    def handle(self, *args, **options):
        region = options["region"]
        if region and not Region.objects.filter(pk=region).exists():
            raise CommandError(
                f"No region {region!r}; regions: {', '.join(Region.objects.values_list('id', flat=True))}"
            )
        if options["recount"]:
            hosts = Host.objects.all() if not region else Host.objects.filter(region_id=region)
            drift = [change for host in hosts.iterator() for change in numa_counters_recount(host=host)]
            for change in drift:
                self.stderr.write(f"repaired {change}")
            self.stderr.write(f"recount: {len(drift)} node(s) repaired")
        if options["history"]:
            self._history(region=region, window=options["window"])
            return
        summaries = region_capacity(region=region, with_hosts=options["hosts"])
        pools = pool_usage(region=region)
        if options["json"]:
            by_region: dict[str, list[dict]] = {}
            for usage in pools:
                by_region.setdefault(usage.region, []).append(usage.as_dict())
            rows = [
                {**s.as_dict(with_hosts=options["hosts"]), "ipv4_pools": by_region.get(s.region, [])}
                for s in summaries
            ]
            self.stdout.write(json.dumps(rows, indent=2))
            return
        self._pools(pools)
        if not summaries:
            self.stdout.write("No hosts.")
            return
        for summary in summaries:
            what = f"{summary.gpu_model} GPUs" if summary.gpu_model else f"{summary.kind} hosts without GPUs"
            self.stdout.write(
                f"{summary.region}  {what}: {summary.hosts} hosts ({summary.hosts_enabled} enabled)"
            )
            if summary.gpu_model:
                self.stdout.write("    " + _counts(summary.gpus))
            self.stdout.write(
                "    sellable now: "
                + (", ".join(f"{p.plan} {p.sellable}" for p in summary.sellable) or "no plans")
            )
            for host in summary.per_host:
                sellable = " ".join(f"{p.gpus or p.plan}:{p.sellable}" for p in host.sellable)
                counts = _counts(host.gpus) if summary.gpu_model else ""
                self.stdout.write(f"      {host.hostname:<24} {host.state:<11} {counts}  sellable {sellable}")

    def _history(self, *, region: str | None, window: str) -> None:
        now = timezone.now()
        series = capacity_history(since=now - CAPACITY_WINDOWS[window], until=now, region=region)
        plans = []
        for history in series:
            plans.extend(plan for plan in history.plans if plan not in plans)
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(
            ["recorded_at", "region", "gpu_model", "hosts", "hosts_enabled", *CAPACITY_SAMPLE_COUNTS]
            + [f"sellable:{plan}" for plan in plans]
        )
        for history in series:
            for sample in history.samples:
                writer.writerow(
                    [
                        sample.recorded_at.strftime("%Y-%m-%dT%H:%M:%S"),
                        history.region,
                        history.gpu_model,
                        sample.hosts,
                        sample.hosts_enabled,
                        *(getattr(sample, name) for name in CAPACITY_SAMPLE_COUNTS),
                    ]
                    + [sample.sellable.get(plan, 0) for plan in plans]
                )

    def _pools(self, pools) -> None:
        """Addresses first: a region whose pools are empty refuses every create, whatever its GPUs."""
        for usage in pools:
            warning = "  (no free address: creates are refused)" if usage.free == 0 else ""
            self.stdout.write(
                f"{usage.region}  IPv4 pool {usage.pool}: {usage.free} free, {usage.held} held, "
                f"{usage.cooling} cooling down, {usage.reserved} reserved{warning}"
            )


def _counts(counts: GpuCounts) -> str:
    shown = [f"total {counts.total}"] + [
        f"{name.replace('_', ' ')} {getattr(counts, name)}"
        for name in ("allocated", "free", "stranded", *GpuCounts.BUCKETS[2:])
        # Cards waiting for a reset, or quarantined after one failed, are always shown: they are owed work.
        if getattr(counts, name) or name in ("allocated", "free", "cleaning", "quarantined")
    ]
    return ", ".join(shown)
