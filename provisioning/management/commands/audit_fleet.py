from django.core.management.base import BaseCommand, CommandError

from provisioning.audit import fleet_violations


class Command(BaseCommand):
    help = (
        "Check the fleet's invariants: no GPU, CPU or address held twice or leaked, counters equal to a "
        "recount, jobs finished or failed with a reason, every domain matching its allocation."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-hypervisor", action="store_true", help="Only the database: do not ask the hosts."
        )
        parser.add_argument(
            "--in-flight-ok", action="store_true", help="Jobs may still be running (a live fleet)."
        )

    def handle(self, *args, no_hypervisor=False, in_flight_ok=False, **options):
        violations = fleet_violations(hypervisor=not no_hypervisor, settled=not in_flight_ok)
        for line in violations:
            self.stdout.write(self.style.ERROR(line))
        if violations:
            raise CommandError(f"{len(violations)} invariant(s) broken")
        self.stdout.write("fleet sound: every invariant holds")
