"""Billing in the admin: visible to staff, changeable by nobody."""

from datetime import date
from decimal import Decimal

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


def test_staff_grant_the_gpu_trial_from_the_account_page_once(client, customer, gpu1, settings):
    from accounts.models import AuditRecord
    from billing.models import Promotion

    settings.GPUADMIN_GPU_TRIAL_CREDIT = "100.00"
    staff = make_user(staff=True)
    client.force_login(staff)
    page = client.get(f"/admin/accounts/account/{customer.pk}/change/")
    assert b'id="grant-gpu-trial"' in page.content and b"GPU trial</th><td>not granted" in page.content
    confirm = client.get(f"/admin/accounts/account/{customer.pk}/grant-gpu-trial/")
    assert b'id="confirm-grant"' in confirm.content and not Promotion.objects.exists()  # GET grants nothing

    done = client.post(f"/admin/accounts/account/{customer.pk}/grant-gpu-trial/", follow=True)
    promotion = Promotion.objects.get(account=customer)
    assert promotion.granted_by == staff and promotion.credit == Decimal("100.00")
    assert b"GPU trial: $100.00 for 7 days" in done.content
    assert AuditRecord.objects.filter(
        action="promotion.grant", actor=staff, target_id=str(promotion.pk)
    ).exists()
    # GPU usage in the trial's week spends it: the account page shows what is left, as the API does.
    from datetime import timedelta

    from django.utils import timezone

    an_hour_ago = timezone.now() - timedelta(hours=1)
    Promotion.objects.filter(pk=promotion.pk).update(starts_at=an_hour_ago)
    created_instance(account=customer, plan=gpu1, created=an_hour_ago + timedelta(minutes=30))
    page = client.get(f"/admin/accounts/account/{customer.pk}/change/")
    assert b"$98.50 of $100.00 left" in page.content  # one started hour at $1.50

    again = client.post(f"/admin/accounts/account/{customer.pk}/grant-gpu-trial/", follow=True)
    assert b"has had its GPU trial already" in again.content
    assert Promotion.objects.filter(account=customer).count() == 1
    listing = client.post(
        "/admin/accounts/account/",
        {"action": "grant_gpu_trial", "_selected_action": [customer.pk]},
        follow=True,
    )
    assert b"has had its GPU trial already" in listing.content
    assert Promotion.objects.count() == 1


def test_the_trial_action_refuses_an_employee_account(client, employee):
    client.force_login(make_user(staff=True))
    response = client.post(
        "/admin/accounts/account/",
        {"action": "grant_gpu_trial", "_selected_action": [employee.pk]},
        follow=True,
    )
    assert b"is not charged" in response.content
    assert not employee.promotions.exists()


def test_the_account_page_lists_its_invoices_with_each_months_totals(client, customer, gpu1):
    january = created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    deleted(january, when=at("2026-01-05 20:01"))
    now = at("2026-02-01 02:00")
    invoice = invoice_finalize(
        invoice=invoice_generate(account=customer, month=date(2026, 1, 1), now=now), now=now
    )
    created_instance(account=customer, plan=gpu1, created=at("2026-02-03 00:00"))
    draft = invoice_generate(account=customer, month=date(2026, 2, 1), now=at("2026-02-03 10:00"))
    client.force_login(make_user(staff=True))
    page = client.get(f"/admin/accounts/account/{customer.pk}/change/").content.decode()
    table = page[page.index('class="account-invoices"') :]
    assert table.index("2026-02") < table.index("2026-01")  # newest month first
    assert "<td>2026-01</td><td>Finalized</td><td>$16.50</td><td>$0.00</td><td>$16.50</td>" in table
    assert "<td>2026-02</td><td>Draft</td><td>$15.00</td><td>$0.00</td><td>$15.00</td>" in table
    assert f'href="/admin/billing/invoice/{invoice.pk}/pdf/"' in table
    assert f"/admin/billing/invoice/{draft.pk}/pdf/" not in table
    assert f"?account__id__exact={customer.pk}" in page
    listing = client.get("/admin/billing/invoice/", {"account__id__exact": customer.pk}).content.decode()
    assert "2 invoices" in listing or "2 results" in listing or listing.count("field-total") == 2


def test_staff_keep_tax_rates_and_an_overlap_is_refused_on_the_form(client):
    from billing.models import TaxRate

    client.force_login(make_user(staff=True))
    form = {"country": "DE", "name": "VAT", "percent": "19", "valid_from": "2020-01-01", "valid_until": ""}
    assert client.post("/admin/billing/taxrate/add/", form).status_code == 302
    refused = client.post("/admin/billing/taxrate/add/", {**form, "percent": "7", "valid_from": "2025-01-01"})
    assert refused.status_code == 200 and b"DE already has a rate for part of that time" in refused.content
    assert list(TaxRate.objects.values_list("percent", flat=True)) == [Decimal("19.000")]
