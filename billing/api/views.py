from django.http import Http404

from billing import selectors
from billing.api.serializers import InvoiceItemSerializer, InvoiceSerializer
from gpuadmin.api import filtering as f
from gpuadmin.api.views import LinodeDetailView, LinodeListView

INVOICE_FILTERS = {
    "id": f.integer("id"),
    "date": f.timestamp("date"),
    "label": f.constant("Invoice"),
    "subtotal": f.decimal("subtotal"),
    "total": f.decimal("total"),
}
ITEM_FILTERS = {
    "label": f.text("label"),
    "region": f.text("region"),
    "type": f.text("type"),
    "from": f.timestamp("from_at"),
    "to": f.timestamp("to_at"),
}


class InvoiceScoped:
    scope = "account"

    def get_invoice(self):
        invoice = selectors.invoice_of(account=self.account, invoice_id=self.kwargs["invoice_id"])
        if invoice is None:
            raise Http404
        return invoice


class InvoiceList(InvoiceScoped, LinodeListView):
    """The account's finalized invoices, newest first."""

    serializer_class = InvoiceSerializer
    filter_fields = INVOICE_FILTERS

    def get_queryset(self):
        return selectors.invoices_of(account=self.account)


class InvoiceDetail(InvoiceScoped, LinodeDetailView):
    serializer_class = InvoiceSerializer

    def get_object(self):
        return self.get_invoice()


class InvoiceItemList(InvoiceScoped, LinodeListView):
    serializer_class = InvoiceItemSerializer
    filter_fields = ITEM_FILTERS

    def get_queryset(self):
        return selectors.invoice_items_of(invoice=self.get_invoice())
