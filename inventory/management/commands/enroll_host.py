from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inventory.models import Host, Region
from inventory.sync import HostSyncError, host_enroll


class Command(BaseCommand):
    help = (
        "Add a host as libvirt describes it (NUMA nodes, CPUs, GPUs and their IOMMU groups) and print "
        "what was recorded. Nothing is written when libvirt cannot be read or the hardware is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("hostname")
        parser.add_argument("--region", required=True, help="Region id (it must exist).")
        parser.add_argument(
            "--uri", required=True, help="libvirt URI: qemu+tls://HOST/system, qemu+ssh://root@HOST/system."
        )
        parser.add_argument("--kind", choices=Host.Kind.values, default=Host.Kind.GPU)

    def handle(self, *args, hostname: str, region: str, uri: str, kind: str, **options):
        found = Region.objects.filter(pk=region).first()
        if found is None:
            raise CommandError(
                f"No region {region!r}; regions: {', '.join(Region.objects.values_list('pk', flat=True))}"
            )
        if Host.objects.filter(hostname=hostname).exists():
            raise CommandError(
                f"{hostname} is enrolled already: `manage.py sync_hosts {hostname}` re-reads it."
            )
        try:
            host, report = host_enroll(region=found, hostname=hostname, libvirt_uri=uri, kind=kind)
        except (HostSyncError, ValidationError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{host.hostname}: enrolled in {found.pk} ({kind}, {host.state})")
        for change in report.changes:
            self.stdout.write(f"  {change}")
