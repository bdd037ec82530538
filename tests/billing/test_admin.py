"""Billing in the admin: visible to staff, changeable by nobody."""

from datetime import date

import pytest

from billing.models import Invoice, InvoiceItem, UsageSegment
from billing.services import invoice_finalize, invoice_generate
from tests.billing.helpers import at, created_instance, deleted
from tests.builders import make_user

pytestmark = pytest.mark.django_db


def test_invoices_items_and_segments_are_read_only(client, customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    deleted(instance, when=at("2026-01-05 20:01"))
    now = at("2026-02-01 02:00")
    invoice = invoice_finalize(
        invoice=invoice_generate(account=customer, month=date(2026, 1, 1), now=now), now=now
    )
    item, segment = InvoiceItem.objects.get(), UsageSegment.objects.get()
    client.force_login(make_user(staff=True))
    for model, row in (("invoice", invoice), ("invoiceitem", item), ("usagesegment", segment)):
        assert client.get(f"/admin/billing/{model}/").status_code == 200
        page = client.get(f"/admin/billing/{model}/{row.pk}/change/")
        assert page.status_code == 200 and b'type="submit" value="Save"' not in page.content
        assert client.post(f"/admin/billing/{model}/{row.pk}/change/", {}).status_code == 403
        assert client.get(f"/admin/billing/{model}/add/").status_code == 403
        assert client.post(f"/admin/billing/{model}/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert b"16.50" in client.get(f"/admin/billing/invoice/{invoice.pk}/change/").content
    invoice.refresh_from_db()
    assert invoice.total == 16.5 and Invoice.objects.count() == 1
