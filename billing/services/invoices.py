"""Invoices, for one account or a whole month, through one set-based writer; the scheduled billing run."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from accounts.services import audit_record_many
from billing import selectors
from billing.bulk import bulk_insert, bulk_set
from billing.exceptions import InvoiceFinalized, MonthNotOver
from billing.models import Invoice, InvoiceItem, Promotion, TaxRate
from billing.months import month_end, month_label, month_of
from billing.rating import ZERO, rate, tax_of, tax_shares
from billing.services.usage import UsageSyncReport, usage_sync

# Creates and resizes in flight at midnight land within minutes; finalizing an hour after the month
# closes keeps their usage on its own month's invoice rather than as a correction on the next one.
FINALIZE_GRACE = timedelta(hours=1)
INSERT_BATCH = 5_000


@dataclass
class InvoiceRun:
    """What one build of a month's invoices did: the invoices built (drafts or finalized) and those it
    left alone because they were finalized already (by an overlapping run, or long ago)."""

    month: date
    invoices: list[Invoice] = field(default_factory=list)
    item_counts: dict[int, int] = field(default_factory=dict)
    already_finalized: list[Invoice] = field(default_factory=list)


def invoice_generate(*, account: Account, month: date, now: datetime | None = None) -> Invoice | None:
    """Sync the account's usage, then build (or rebuild) its draft invoice for `month`.

    The draft holds the month's pieces (up to now for a month not over) and the late pieces of
    earlier months whose invoice is finalized. Returns None when there is nothing to bill and no
    draft exists. A finalized invoice is refused.
    """
    now = now or timezone.now()
    if month > month_of(now):
        raise MonthNotOver(f"{month_label(month)} has not begun; there is nothing to invoice yet.")
    with transaction.atomic():
        run = _invoices_build(account_ids=[account.pk], month=month, now=now, finalize=False, actor=None)
    if run.already_finalized:
        raise _finalized(run.already_finalized[0])
    return run.invoices[0] if run.invoices else None


def invoice_finalize(
    *, invoice: Invoice, now: datetime | None = None, actor: AbstractBaseUser | None = None
) -> Invoice:
    """Sync the account's usage, rebuild the draft from it, tax it and freeze it. Only once its month
    is over."""
    now = now or timezone.now()
    if now < month_end(invoice.period):
        raise MonthNotOver(
            f"{month_label(invoice.period)} is not over until "
            f"{month_end(invoice.period):%Y-%m-%d %H:%M} UTC; its invoice can be finalized after that."
        )
    with transaction.atomic():
        run = _invoices_build(
            account_ids=[invoice.account_id], month=invoice.period, now=now, finalize=True, actor=actor
        )
    if run.already_finalized:
        raise _finalized(run.already_finalized[0])
    return run.invoices[0]


def invoices_build(
    *,
    month: date,
    now: datetime | None = None,
    finalize: bool = False,
    account_ids: Iterable[int] | None = None,
    actor: AbstractBaseUser | None = None,
) -> InvoiceRun:
    """Build the invoices of `month` for every account that has something to bill in it (or only
    `account_ids`), in one transaction, and with `finalize` tax and freeze them. Invoices finalized
    already are left as they are and listed in the run: a second run started at the same time finds
    the first one's work done, and does nothing."""
    now = now or timezone.now()
    if month > month_of(now):
        raise MonthNotOver(f"{month_label(month)} has not begun; there is nothing to invoice yet.")
    if finalize and now < month_end(month):
        raise MonthNotOver(
            f"{month_label(month)} is not over until {month_end(month):%Y-%m-%d %H:%M} UTC; "
            "build drafts now and finalize after that."
        )
    if account_ids is None:
        account_ids = [account.pk for account in selectors.accounts_to_invoice(month=month, now=now)]
    with transaction.atomic():
        return _invoices_build(
            account_ids=list(account_ids), month=month, now=now, finalize=finalize, actor=actor
        )


def _finalized(invoice: Invoice) -> InvoiceFinalized:
    return InvoiceFinalized(
        f"Invoice {invoice.pk} ({invoice.account}, {month_label(invoice.period)}) is finalized and cannot "
        "change; usage found later is billed on the next invoice."
    )


def _invoices_build(
    *, account_ids: list[int], month: date, now: datetime, finalize: bool, actor: AbstractBaseUser | None
) -> InvoiceRun:
    """The one way invoices are written, for one account or ten thousand; inside a transaction."""
    run = InvoiceRun(month=month)
    # One invoicing transaction per account at a time: two drafts must not both take a late piece or
    # both spend the same credit. Locked in id order, so overlapping runs never deadlock.
    # NO KEY: a concurrent sync inserting a segment takes a key-share lock on the account (its foreign
    # key) and must not wait for this lock while this transaction waits for its segment.
    accounts = {
        account.pk: account
        for account in Account.objects.filter(pk__in=account_ids)
        .order_by("pk")
        .select_for_update(no_key=True)
    }
    invoices = {
        invoice.account_id: invoice
        for invoice in Invoice.objects.filter(account_id__in=list(accounts), period=month)
    }
    for account_id, invoice in list(invoices.items()):
        if invoice.finalized:
            invoice.account = accounts.pop(account_id)
            run.already_finalized.append(invoice)
            del invoices[account_id]
    if not accounts:
        return run
    promotions = {
        promotion.pk: promotion
        for promotion in Promotion.objects.select_for_update()
        .filter(account_id__in=list(accounts))
        .order_by("pk")
    }
    _drafts_clear(list(invoices.values()), promotions)
    # An invoice built from segments that missed a delete would bill the month to its end.
    usage_sync(now=now, account_ids=list(accounts))
    pieces = _pieces_for(account_ids=list(accounts), month=month, now=now)

    rates = selectors.tax_rates_on(day=month_end(month).date()) if finalize else {}
    credits_by_account = defaultdict(list)
    for promotion in sorted(promotions.values(), key=lambda p: (p.expires_at, p.pk)):
        credits_by_account[promotion.account_id].append(selectors.credit_of(promotion, spent=promotion.used))
    rated_by_account = {}
    for account_id, account in accounts.items():
        account_pieces = pieces.get(account_id, [])
        invoice = invoices.get(account_id)
        if invoice is None and not account_pieces:
            continue  # nothing to bill, and no draft to empty
        if invoice is None:
            invoice = invoices[account_id] = Invoice(
                account_id=account_id, period=month, date=month_end(month)
            )
        invoice.account = account
        rated = rate(
            [bp.piece for bp in account_pieces],
            waived_reason=selectors.charge_waiver(account=account),
            credits=credits_by_account[account_id],
        )
        for item in rated:
            if item.promotion_id is not None:
                promotions[item.promotion_id].used += item.credit
        invoice.subtotal = sum((item.amount for item in rated), ZERO)
        shares = _tax(
            invoice, [item.amount for item in rated], rates.get(account.country) if finalize else None
        )
        if finalize:
            invoice.status, invoice.finalized_at = Invoice.Status.FINALIZED, now
        invoice.updated = now
        segments = {bp.piece.key: bp.segment for bp in account_pieces}
        rated_by_account[account_id] = [
            (item, segments[item.piece.key], tax) for item, tax in zip(rated, shares, strict=True)
        ]
        run.invoices.append(invoice)
    # The database checks every column of what follows (types, lengths, CHECK constraints such as
    # total = subtotal + tax): a per-row full_clean() was most of the month's time at 100,000 items.
    drafts = [invoice for invoice in run.invoices if invoice.pk is not None]
    Invoice.objects.bulk_create(
        [invoice for invoice in run.invoices if invoice.pk is None], batch_size=INSERT_BATCH
    )
    bulk_set(
        Invoice,
        drafts,
        [
            "subtotal",
            "tax",
            "total",
            "status",
            "finalized_at",
            "tax_rate",
            "tax_name",
            "tax_percent",
            "updated",
        ],
    )
    rows = [
        (invoices[account_id].pk, item, segment, tax)
        for account_id, lines in rated_by_account.items()
        for item, segment, tax in lines
    ]
    bulk_insert(
        InvoiceItem,
        {
            "invoice_id": [invoice_id for invoice_id, _, _, _ in rows],
            "segment_id": [segment.id for _, _, segment, _ in rows],
            "period": [item.piece.month for _, item, _, _ in rows],
            "type": [InvoiceItem.Type.HOURLY] * len(rows),
            "label": [segment.item_label for _, _, segment, _ in rows],
            "region": [segment.region_id for _, _, segment, _ in rows],
            "from_at": [item.piece.start for _, item, _, _ in rows],
            "to_at": [item.piece.end for _, item, _, _ in rows],
            "quantity": [item.quantity for _, item, _, _ in rows],
            "unit_price": [item.piece.hourly for _, item, _, _ in rows],
            "list_amount": [item.list_amount for _, item, _, _ in rows],
            "credit": [item.credit for _, item, _, _ in rows],
            "promotion_id": [item.promotion_id for _, item, _, _ in rows],
            "waived_reason": [item.waived_reason for _, item, _, _ in rows],
            "amount": [item.amount for _, item, _, _ in rows],
            "tax": [tax for _, _, _, tax in rows],
            "total": [item.amount + tax for _, item, _, tax in rows],
        },
    )
    run.item_counts = {invoices[account_id].pk: len(lines) for account_id, lines in rated_by_account.items()}
    bulk_set(Promotion, list(promotions.values()), ["used"])
    if finalize:
        audit_record_many(
            actor=actor,
            action="invoice.finalize",
            targets=[(invoice, f"total {invoice.total}") for invoice in run.invoices],
        )
    return run


def _drafts_clear(drafts: list[Invoice], promotions: dict[int, Promotion]) -> None:
    """Take the drafts' items off them, giving back the credit they spent."""
    if not drafts:
        return
    items = InvoiceItem.objects.filter(invoice_id__in=[draft.pk for draft in drafts])
    for promotion_id, credit in items.exclude(promotion=None).values_list("promotion_id", "credit"):
        promotions[promotion_id].used -= credit
    items.delete()


def _pieces_for(*, account_ids: list[int], month: date, now: datetime) -> dict[int, list]:
    """Per account, the pieces its invoice for `month` takes: the month's own, and late ones of earlier
    months whose invoice was finalized without them."""
    found = selectors.billable_pieces(until=min(now, month_end(month)), account_ids=account_ids)
    finalized = selectors.finalized_periods(account_ids=account_ids)
    by_account = defaultdict(list)
    for bp in found:
        if bp.invoice_id is None and (
            bp.piece.month == month
            or (bp.piece.month < month and (bp.account_id, bp.piece.month) in finalized)
        ):
            by_account[bp.account_id].append(bp)
    return by_account


def _tax(invoice: Invoice, amounts: list[Decimal], tax_rate: TaxRate | None) -> list[Decimal]:
    """Tax the invoice's subtotal (after credits and waivers) at `tax_rate`, rounded half up to the
    cent once, on the whole invoice; return that tax shared out over the items, so that each item's
    total is its amount plus its share and the items still add up to the invoice."""
    invoice.tax_rate = tax_rate
    invoice.tax_name = tax_rate.name if tax_rate else ""
    invoice.tax_percent = tax_rate.percent if tax_rate else None
    invoice.tax = tax_of(invoice.subtotal, tax_rate.percent) if tax_rate else ZERO
    invoice.total = invoice.subtotal + invoice.tax
    return tax_shares(invoice.tax, amounts)


@dataclass
class BillingRunReport:
    usage: UsageSyncReport
    invoices: list[Invoice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        finalized = sum(invoice.finalized for invoice in self.invoices)
        text = f"usage: {self.usage}; {len(self.invoices)} invoices built, {finalized} finalized"
        if self.problems:
            text += f"; {len(self.problems)} problems"
        return text


def billing_run(*, now: datetime | None = None) -> BillingRunReport:
    """What the schedule does: sync usage, then invoice every closed month that has unbilled usage,
    oldest first, finalizing once the month has been over for FINALIZE_GRACE. Catches up by itself
    after a missed run; a run overlapping another finds the other's invoices finalized and says so."""
    now = now or timezone.now()
    report = BillingRunReport(usage=usage_sync(now=now))
    current = month_of(now)
    pieces = selectors.billable_pieces(until=min(now, month_end(current)))
    targets = selectors.invoice_targets(pieces=pieces, before=current)
    months = sorted({month for months in targets.values() for month in months})
    for month in months:
        run = invoices_build(
            month=month,
            now=now,
            finalize=now >= month_end(month) + FINALIZE_GRACE,
            account_ids=sorted(account_id for account_id, wanted in targets.items() if month in wanted),
        )
        report.invoices += run.invoices
        report.problems += [_finalized(invoice).message for invoice in run.already_finalized]
    return report
