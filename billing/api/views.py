from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation

from billing import selectors
from billing.api.serializers import InvoiceItemSerializer, InvoiceSerializer
from billing.documents import invoice_pdf
from gpuadmin.api import filtering as f
from gpuadmin.api.views import LinodeDetailView, LinodeListView, LinodeView

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


class JsonErrorsWhateverIsAccepted(BaseContentNegotiation):
    """The PDF endpoint's errors are Linode's JSON body even for a client that asked for a PDF only:
    a 404 must not turn into a 406 because of its Accept header."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class InvoicePdf(InvoiceScoped, LinodeView):
    """A finalized invoice as a PDF: what the Cloud Manager's "Download PDF" gives. Errors are JSON."""

    content_negotiation_class = JsonErrorsWhateverIsAccepted

    @extend_schema(
        responses={(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The invoice")}
    )
    def get(self, request, invoice_id: int):
        invoice = self.get_invoice()
        document = selectors.invoice_document(invoice=invoice)
        response = HttpResponse(invoice_pdf(document), content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="invoice-{invoice.pk}.pdf"'
        return response
