"""Reads behind invoicing, the account's balances and the invoice endpoints; each costs a fixed number
of queries whatever the account's history."""

from billing.selectors.balances import AccountBilling, account_billing, account_promotions, credit_of
from billing.selectors.documents import (
    MONTH_ITEM_COLUMNS,
    DocumentLine,
    InvoiceDocument,
    invoice_document,
    month_items,
)
from billing.selectors.invoices import (
    account_invoices,
    invoice_items_of,
    invoice_of,
    invoices_of,
    tax_rates_on,
    tax_rates_overlapping,
)
from billing.selectors.pieces import (
    MAX_ID,
    SEGMENT_COLUMNS,
    WAIVED_KINDS,
    BillablePiece,
    SegmentRow,
    accounts_to_invoice,
    billable_pieces,
    charge_waiver,
    finalized_periods,
    instances_to_sync,
    invoice_targets,
    sync_facts,
    unbilled_pieces,
)

__all__ = [
    "MAX_ID",
    "WAIVED_KINDS",
    "charge_waiver",
    "SegmentRow",
    "BillablePiece",
    "SEGMENT_COLUMNS",
    "billable_pieces",
    "finalized_periods",
    "invoice_targets",
    "accounts_to_invoice",
    "instances_to_sync",
    "sync_facts",
    "unbilled_pieces",
    "credit_of",
    "AccountBilling",
    "account_billing",
    "account_promotions",
    "invoices_of",
    "invoice_of",
    "invoice_items_of",
    "account_invoices",
    "tax_rates_on",
    "tax_rates_overlapping",
    "DocumentLine",
    "InvoiceDocument",
    "invoice_document",
    "MONTH_ITEM_COLUMNS",
    "month_items",
]
