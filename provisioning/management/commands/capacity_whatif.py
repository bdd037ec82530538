import json

from django.core.management.base import BaseCommand, CommandError

from provisioning.placement import POLICIES
from provisioning.whatif import ScenarioError, capacity_whatif, parse_scenario


class Command(BaseCommand):
    help = (
        "What would be sellable in a region after a scenario (requests of a plan mix, drained hosts, faulty "
        "cards, added hosts), under best fit, first fit and spread side by side. Reads the live fleet; "
        "changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True, help="The region the scenario happens in.")
        parser.add_argument(
            "--request",
            action="append",
            default=[],
            metavar="PLAN=N",
            help="N requests of PLAN, placed in the order given (repeat for a mix).",
        )
        parser.add_argument("--drain", action="append", default=[], metavar="HOSTNAME", help="Drain a host.")
        parser.add_argument(
            "--faulty", action="append", default=[], metavar="HOSTNAME:PCI", help="Mark a card faulty."
        )
        parser.add_argument(
            "--add-hosts",
            action="append",
            default=[],
            metavar="PROFILE=N",
            help="Add N empty hosts of a seed_fleet profile (rtx6000-2x2, rtx6000-2x4, standard-2x32).",
        )
        parser.add_argument("--json", action="store_true", help="One JSON document instead of a table.")

    def handle(self, *args, **options):
        try:
            scenario = parse_scenario(
                region=options["region"],
                requests=options["request"],
                drain=options["drain"],
                faulty=options["faulty"],
                add_hosts=options["add_hosts"],
            )
            result = capacity_whatif(scenario=scenario)
        except ScenarioError as error:
            raise CommandError(str(error)) from error
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        self.stdout.write(f"What if, in {scenario.region}: {'; '.join(scenario.describe())}")
        header = ["", "now", *POLICIES]
        lines = [(what, now, *after) for what, now, after in result.table()]
        widths = [max(len(str(row[i])) for row in [header, *lines]) for i in range(len(header))]
        for row in [header, *lines]:
            cells = [str(row[0]).ljust(widths[0])] + [
                str(c).rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
            ]
            self.stdout.write("  ".join(cells).rstrip())
