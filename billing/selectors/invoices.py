"""Invoices as the API and the admin list them, and the tax rates in force."""

from datetime import date

from django.db.models import Q, QuerySet

from accounts.models import Account
from billing.models import Invoice, InvoiceItem, TaxRate
from billing.selectors.pieces import MAX_ID


def invoices_of(*, account: Account | None) -> QuerySet[Invoice]:
    """An account's invoices as the API shows them: finalized ones only (a draft may still change)."""
    if account is None:
        return Invoice.objects.none()
    return Invoice.objects.filter(account=account, status=Invoice.Status.FINALIZED).order_by("-date", "-id")


def invoice_of(*, account: Account | None, invoice_id: int) -> Invoice | None:
    """Another account's invoice is as absent as one that never existed."""
    if not 0 < invoice_id <= MAX_ID:
        return None
    return invoices_of(account=account).filter(pk=invoice_id).first()


def invoice_items_of(*, invoice: Invoice) -> QuerySet[InvoiceItem]:
    return invoice.items.order_by("from_at", "id")


def account_invoices(*, account: Account) -> list[Invoice]:
    """All the account's invoices, drafts included, newest month first: the account page's table."""
    return list(Invoice.objects.filter(account=account).order_by("-period", "-id"))


def tax_rates_on(*, day: date) -> dict[str, TaxRate]:
    """The tax rate in force on `day` in each country that has one."""
    in_force = TaxRate.objects.filter(valid_from__lte=day).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=day)
    )
    return {tax_rate.country: tax_rate for tax_rate in in_force}


def tax_rates_overlapping(*, tax_rate: TaxRate) -> list[TaxRate]:
    """The other rates of the same country whose period meets this one's."""
    others = TaxRate.objects.filter(country=tax_rate.country).exclude(pk=tax_rate.pk)
    others = others.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=tax_rate.valid_from))
    if tax_rate.valid_until is not None:
        others = others.filter(valid_from__lt=tax_rate.valid_until)
    return list(others.order_by("valid_from"))
