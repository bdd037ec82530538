from django.urls import path

from billing.api import views

urlpatterns = [
    path("account/invoices", views.InvoiceList.as_view(), name="invoices"),
    path("account/invoices/<int:invoice_id>", views.InvoiceDetail.as_view(), name="invoice"),
    path("account/invoices/<int:invoice_id>/items", views.InvoiceItemList.as_view(), name="invoice-items"),
    path("account/invoices/<int:invoice_id>/pdf", views.InvoicePdf.as_view(), name="invoice-pdf"),
]
