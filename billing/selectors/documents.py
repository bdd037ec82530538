"""What an invoice's PDF and a month's CSV show."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from billing.models import Invoice, InvoiceItem
from billing.rating import ZERO


@dataclass(frozen=True)
class DocumentLine:
    label: str
    plan: str
    region: str
    start: datetime
    end: datetime
    hours: int
    unit_price: Decimal
    list_amount: Decimal
    credit: Decimal
    waived: Decimal
    amount: Decimal
    tax: Decimal
    note: str


@dataclass(frozen=True)
class InvoiceDocument:
    """Everything an invoice's PDF or CSV shows, read in two queries."""

    invoice_id: int
    account_name: str
    account_company: str
    account_email: str
    account_country: str
    period: date
    date: datetime
    status: str
    lines: list[DocumentLine]
    subtotal: Decimal
    tax_name: str
    tax_percent: Decimal | None
    tax: Decimal
    total: Decimal

    @property
    def credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)

    @property
    def waived(self) -> Decimal:
        return sum((line.waived for line in self.lines), ZERO)


def invoice_document(*, invoice: Invoice) -> InvoiceDocument:
    invoice = Invoice.objects.select_related("account").get(pk=invoice.pk)
    items = invoice.items.select_related("segment__instance", "promotion").order_by("from_at", "id")
    return InvoiceDocument(
        invoice_id=invoice.pk,
        account_name=invoice.account.name,
        account_company=invoice.account.company,
        account_email=invoice.account.email,
        account_country=invoice.account.country,
        period=invoice.period,
        date=invoice.date,
        status=invoice.status,
        lines=[_document_line(item, invoice_period=invoice.period) for item in items],
        subtotal=invoice.subtotal,
        tax_name=invoice.tax_name,
        tax_percent=invoice.tax_percent,
        tax=invoice.tax,
        total=invoice.total,
    )


def _document_line(item: InvoiceItem, *, invoice_period: date) -> DocumentLine:
    instance = item.segment.instance
    notes = []
    if item.promotion_id is not None:
        notes.append(f"credit: {item.promotion.summary}")
    if item.waived_reason:
        notes.append(f"waived: {item.waived_reason}")
    if item.period != invoice_period:
        notes.append(f"{item.period:%Y-%m} usage found after that month was invoiced")
    return DocumentLine(
        label=f"{instance.label} ({instance.pk})",
        plan=item.segment.instance_type_id,
        region=item.region,
        start=item.from_at,
        end=item.to_at,
        hours=item.quantity,
        unit_price=item.unit_price,
        list_amount=item.list_amount,
        credit=item.credit,
        waived=item.list_amount if item.waived_reason else ZERO,
        amount=item.amount,
        tax=item.tax,
        note="; ".join(notes),
    )


MONTH_ITEM_COLUMNS = {
    "invoice": "invoice_id",
    "account": "invoice__account__name",
    "country": "invoice__account__country",
    "invoice_status": "invoice__status",
    "invoice_month": "invoice__period",
    "usage_month": "period",
    "label": "label",
    "plan": "segment__instance_type_id",
    "instance": "segment__instance_id",
    "region": "region",
    "from": "from_at",
    "to": "to_at",
    "hours": "quantity",
    "unit_price": "unit_price",
    "list_amount": "list_amount",
    "credit": "credit",
    "promotion": "promotion__summary",
    "waived_reason": "waived_reason",
    "amount": "amount",
    "tax": "tax",
    "total": "total",
}


def month_items(*, month: date) -> Iterable[tuple]:
    """Every item on the invoices of `month` (drafts and finalized, corrections of earlier months
    included), in `MONTH_ITEM_COLUMNS` order, by account and time: one query, streamed."""
    items = InvoiceItem.objects.filter(invoice__period=month).order_by(
        "invoice__account__name", "from_at", "id"
    )
    return items.values_list(*MONTH_ITEM_COLUMNS.values()).iterator(chunk_size=2000)
