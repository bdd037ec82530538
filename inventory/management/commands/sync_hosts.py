from django.core.management.base import BaseCommand, CommandError

from inventory.models import Host
from inventory.statistics import inventory_statistics_refresh
from inventory.sync import HostSyncError, host_is_discoverable, host_sync


class Command(BaseCommand):
    help = (
        "Read hosts' NUMA topology and GPUs from libvirt and update the inventory; print what changed. "
        "Without hostnames, every host that has hardware to discover (synthetic hosts are skipped). "
        "Exits non-zero when a host could not be synced."
    )

    def add_arguments(self, parser):
        parser.add_argument("hostnames", nargs="*", metavar="HOSTNAME")

    def handle(self, *args, hostnames: list[str], verbosity: int, **options):
        if hostnames:
            hosts = list(Host.objects.filter(hostname__in=hostnames).order_by("hostname"))
            unknown = sorted(set(hostnames) - {h.hostname for h in hosts})
        else:
            hosts, unknown = list(Host.objects.order_by("hostname")), []
        failures = [f"{name}: no such host" for name in unknown]
        changed = 0
        for host in hosts:
            if not hostnames and not host_is_discoverable(host=host):
                if verbosity >= 2:
                    self.stdout.write(f"{host.hostname}: skipped, nothing to discover ({host.libvirt_uri})")
                continue
            try:
                report = host_sync(host=host)
            except HostSyncError as exc:
                failures.append(str(exc))
                continue
            if not report.changed:
                self.stdout.write(f"{host.hostname}: unchanged")
            else:
                changed += 1
                count = len(report.changes)
                self.stdout.write(f"{host.hostname}: {count} change{'s' if count != 1 else ''}")
                for change in report.changes:
                    self.stdout.write(f"  {change}")
            if verbosity >= 2:
                for ignored in report.ignored:
                    self.stdout.write(f"  ignored {ignored}")
        if changed:
            # A sync of many hosts is a bulk change: the claim's plans need statistics that count it.
            inventory_statistics_refresh()
        for failure in failures:
            self.stderr.write(failure)
        if failures:
            raise CommandError(f"{len(failures)} host(s) not synced")
