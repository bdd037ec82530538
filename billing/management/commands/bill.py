from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.exceptions import BillingError
from billing.months import month_before, month_end, month_label, month_of, parse_month
from billing.selectors import accounts_to_invoice
from billing.services import invoice_finalize, invoice_generate, usage_sync


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
        failed = 0
        accounts = accounts_to_invoice(month=month, now=now)
        for account in accounts:
            try:
                invoice = invoice_generate(account=account, month=month, now=now)
                if invoice is not None and finalize:
                    invoice = invoice_finalize(invoice=invoice, now=now)
            except BillingError as exc:
                failed += 1
                self.stderr.write(self.style.ERROR(f"{account}: {exc.message}"))
                continue
            if invoice is not None:
                self.stdout.write(
                    f"{account}: invoice {invoice.pk} for {month_label(month)}, {invoice.status}, "
                    f"{invoice.items.count()} items, total {invoice.total}"
                )
        if not accounts:
            self.stdout.write(f"nothing to bill for {month_label(month)}")
        if failed:
            raise CommandError(f"{failed} account(s) could not be billed")
