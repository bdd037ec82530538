from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.exceptions import BillingError
from billing.months import month_before, month_end, month_label, month_of, parse_month
from billing.services import invoices_build, usage_sync


class Command(BaseCommand):
    help = (
        "Sync usage from provisioning, then build the invoices of a month (by default the last month "
        "that has ended); with --finalize, freeze them. Safe to run again: drafts are rebuilt, "
        "finalized invoices are left as they are."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", metavar="YYYY-MM", help="The UTC month to bill.")
        parser.add_argument(
            "--finalize", action="store_true", help="Finalize the invoices (only for a month that has ended)."
        )

    def handle(self, *args, month=None, finalize=False, **options):
        now = timezone.now()
        try:
            month = parse_month(month) if month else month_before(month_of(now))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if month > month_of(now):
            raise CommandError(f"{month_label(month)} has not begun; there is nothing to bill yet.")
        if finalize and now < month_end(month):
            raise CommandError(
                f"{month_label(month)} is not over until {month_end(month):%Y-%m-%d %H:%M} UTC; "
                "build drafts now (without --finalize) and finalize after that."
            )
        self.stdout.write(f"usage: {usage_sync(now=now)}")
        try:
            run = invoices_build(month=month, now=now, finalize=finalize)
        except BillingError as exc:
            raise CommandError(exc.message) from exc
        for invoice in run.invoices:
            self.stdout.write(
                f"{invoice.account}: invoice {invoice.pk} for {month_label(month)}, {invoice.status}, "
                f"{run.item_counts[invoice.pk]} items, total {invoice.total}"
            )
        for invoice in run.already_finalized:
            # Another run finalized it first (two started at once, say): its work is done, not failed.
            self.stdout.write(
                f"{invoice.account}: invoice {invoice.pk} for {month_label(month)} was finalized already"
            )
        if not run.invoices and not run.already_finalized:
            self.stdout.write(f"nothing to bill for {month_label(month)}")
