import time

from django.core.management.base import BaseCommand, CommandError

from inventory.fleet import DEFAULT_PROFILE, PROFILES, fleet_seed
from inventory.models import Region


class Command(BaseCommand):
    help = "Add N synthetic hosts (test-driver URIs) to a region in bulk, for benchmarks and what-if runs."

    def add_arguments(self, parser):
        parser.add_argument("--hosts", type=int, required=True, help="How many hosts to add.")
        parser.add_argument("--region", default="us-east", help="Region id (created if missing).")
        parser.add_argument(
            "--profile",
            default=DEFAULT_PROFILE,
            choices=sorted(PROFILES),
            help="; ".join(f"{name}: {p.help}" for name, p in PROFILES.items()),
        )
        parser.add_argument("--prefix", help="Hostname prefix (default <region>-gpu-fleet).")

    def handle(self, *args, **options):
        if options["hosts"] < 1:
            raise CommandError("--hosts must be at least 1.")
        region, created = Region.objects.get_or_create(
            id=options["region"], defaults={"label": f"Synthetic {options['region']}", "country": "us"}
        )
        if created:
            self.stdout.write(f"Created region {region.id}.")
        started = time.monotonic()
        names = fleet_seed(
            region=region, count=options["hosts"], profile=options["profile"], prefix=options["prefix"]
        )
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Added {len(names)} {options['profile']} hosts to {region.id} ({names[0]} .. {names[-1]}) "
                f"in {elapsed:.1f} s."
            )
        )
