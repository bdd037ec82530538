"""Invoices as documents people read: a PDF (reportlab, pure Python) and a month's items as CSV."""

from billing.documents.items_csv import month_items_csv
from billing.documents.pdf import invoice_pdf

__all__ = ["invoice_pdf", "month_items_csv"]
