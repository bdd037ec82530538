"""Invoices as documents: the PDF a customer or staff downloads (its text read back with pypdf), and a
month's items as CSV in the admin."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.test import Client
from pypdf import PdfReader

from accounts.models import Account
from billing.documents import invoice_pdf
from billing.models import TaxRate
from billing.selectors import DocumentLine, InvoiceDocument
from billing.services import invoice_finalize, invoice_generate, promotion_grant_gpu_trial, tax_rate_save
from tests.api.conftest import Api, reasons, token_for
from tests.billing.helpers import at, created_instance, deleted
from tests.builders import make_account, make_user

JAN = date(2026, 1, 1)
AFTER_JAN = at("2026-02-01 02:00")


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return " ".join(text.split())  # cells and lines come out separated by spaces or newlines


def test_the_pdf_shows_every_item_a_waiver_a_credit_and_the_tax():
    """The renderer alone, on one document that has all three (no real invoice can: an employee's
    account is waived whole and never gets a trial)."""
    line = {"region": "us-east", "unit_price": Decimal("1.5000"), "tax": Decimal("0")}
    document = InvoiceDocument(
        invoice_id=4711,
        account_name="acme",
        account_company="Acme GmbH",
        account_email="billing@acme.example",
        account_country="DE",
        period=JAN,
        date=at("2026-02-01 00:00"),
        status="finalized",
        lines=[
            DocumentLine(
                label="train-1 (17)",
                plan="g1-gpu-rtx6000-1",
                start=at("2026-01-05 10:00"),
                end=at("2026-01-05 20:01"),
                hours=11,
                list_amount=Decimal("16.50"),
                credit=Decimal("10.00"),
                waived=Decimal("0"),
                amount=Decimal("6.50"),
                note="credit: GPU trial: $10.00 for 7 days of GPU usage",
                **line,
            ),
            DocumentLine(
                label="staff-box (18)",
                plan="g1-gpu-rtx6000-2",
                start=at("2026-01-06 00:00"),
                end=at("2026-01-06 02:00"),
                hours=2,
                list_amount=Decimal("6.00"),
                credit=Decimal("0"),
                waived=Decimal("6.00"),
                amount=Decimal("0"),
                note="waived: employee account: not charged",
                **{**line, "unit_price": Decimal("3.0000")},
            ),
        ],
        subtotal=Decimal("6.50"),
        tax_name="VAT",
        tax_percent=Decimal("19.000"),
        tax=Decimal("1.24"),
        total=Decimal("7.74"),
    )
    text = pdf_text(invoice_pdf(document))
    assert "Invoice 4711" in text
    assert "Period: 2026-01 (UTC)" in text and "Date: 2026-02-01" in text
    assert "acme / Acme GmbH / billing@acme.example / DE" in text
    # Item, plan, from, to, hours, unit price, amount, credit, waived, charged.
    assert (
        "train-1 (17) [1] g1-gpu-rtx6000-1 2026-01-05 10:00 2026-01-05 20:01 11 $1.50 "
        "$16.50 $10.00 $0.00 $6.50" in text
    )
    assert (
        "staff-box (18) [2] g1-gpu-rtx6000-2 2026-01-06 00:00 2026-01-06 02:00 2 $3.00 "
        "$6.00 $0.00 $6.00 $0.00" in text
    )
    assert "Credits $10.00" in text and "Waived $6.00" in text
    assert "Subtotal $6.50" in text and "Tax: VAT (19%) $1.24" in text and "Total $7.74" in text
    assert "[1] credit: GPU trial" in text and "[2] waived: employee account: not charged" in text


def rate_de(percent: str = "19") -> None:
    tax_rate_save(
        tax_rate=TaxRate(country="DE", name="VAT", percent=Decimal(percent), valid_from=date(2020, 1, 1))
    )


def january(account, plan, *, trial: bool = False):
    if trial:
        promotion_grant_gpu_trial(account=account, now=at("2026-01-05 00:00"))
    first = created_instance(account=account, plan=plan, created=at("2026-01-05 10:00"))
    deleted(first, when=at("2026-01-05 20:01"))
    second = created_instance(account=account, plan=plan, created=at("2026-01-06 10:00"))
    deleted(second, when=at("2026-01-06 10:20"))
    invoice = invoice_finalize(
        invoice=invoice_generate(account=account, month=JAN, now=AFTER_JAN), now=AFTER_JAN
    )
    return invoice, first, second


@pytest.mark.django_db
def test_a_customer_downloads_the_pdf_of_a_taxed_invoice_with_a_trial_credit(gpu1, settings):
    settings.GPUADMIN_GPU_TRIAL_CREDIT = "10.00"
    rate_de()
    account = make_account()
    Account.objects.filter(pk=account.pk).update(country="DE")
    account.refresh_from_db()
    invoice, first, second = january(account, gpu1, trial=True)
    api = Api(Client(), token_for(make_user(account=account), "account:read_only"))

    response = api.get(f"/v4/account/invoices/{invoice.pk}/pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="invoice-{invoice.pk}.pdf"'
    text = pdf_text(response.content)
    items = list(invoice.items.order_by("from_at"))
    for item, instance in zip(items, (first, second), strict=True):
        row = (
            f"{instance.label} ({instance.pk})"
            + (" [1]" if item.credit else "")
            + f" {gpu1.pk} {item.from_at:%Y-%m-%d %H:%M} {item.to_at:%Y-%m-%d %H:%M} {item.quantity} $1.50 "
            f"${item.list_amount} ${item.credit} $0.00 ${item.amount}"
        )
        assert row in text
    # $18.00 of usage, $10.00 of it paid by the trial, 19 % VAT on the $8.00 left.
    assert "Credits $10.00" in text and "Subtotal $8.00" in text
    assert "Tax: VAT (19%) $1.52" in text and "Total $9.52" in text
    assert f"Invoice {invoice.pk}" in text and "Period: 2026-01 (UTC)" in text and account.name in text
    # The JSON object is unchanged by the document's existence.
    assert api.get(f"/v4/account/invoices/{invoice.pk}").json()["total"] == 9.52


@pytest.mark.django_db
def test_the_pdf_endpoint_keeps_linodes_errors(gpu1):
    account = make_account()
    invoice, _, _ = january(account, gpu1)
    stranger = Api(Client(), token_for(make_user(), "account:read_only"))
    for path in (f"/v4/account/invoices/{invoice.pk}/pdf", "/v4/account/invoices/999999/pdf"):
        response = stranger.get(path, headers={"Accept": "application/pdf"})
        assert response.status_code == 404 and response["Content-Type"] == "application/json"
        assert reasons(response) == ["Not found"]
    owner = make_user(account=account)
    assert Api(Client()).get(f"/v4/account/invoices/{invoice.pk}/pdf").status_code == 401
    response = Api(Client(), token_for(owner, "linodes:read_write")).get(
        f"/v4/account/invoices/{invoice.pk}/pdf"
    )
    assert response.status_code == 403 and response["X-Accepted-OAuth-Scopes"] == "account:read_only"
    draft = invoice_generate(account=account, month=date(2026, 2, 1), now=at("2026-02-10 00:00"))
    created_instance(account=account, plan=gpu1, created=at("2026-02-05 00:00"))
    draft = invoice_generate(account=account, month=date(2026, 2, 1), now=at("2026-02-10 00:00"))
    assert Api(Client(), token_for(owner)).get(f"/v4/account/invoices/{draft.pk}/pdf").status_code == 404


@pytest.mark.django_db
def test_staff_download_the_pdf_of_an_employees_waived_invoice_from_the_admin(client, employee, gpu1):
    invoice, first, _ = january(employee, gpu1)
    client.force_login(make_user(staff=True))
    page = client.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    assert f'href="/admin/billing/invoice/{invoice.pk}/pdf/"'.encode() in page.content
    response = client.get(f"/admin/billing/invoice/{invoice.pk}/pdf/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = pdf_text(response.content)
    assert f"{first.label} ({first.pk}) [1] {gpu1.pk}" in text
    assert "11 $1.50 $16.50 $0.00 $16.50 $0.00" in text  # the price, no credit, all of it waived
    assert "[1] waived: employee account: not charged" in text
    assert "Waived $18.00" in text and "Subtotal $0.00" in text and "Total $0.00" in text
    customer = Client()
    customer.force_login(make_user())
    assert customer.get(f"/admin/billing/invoice/{invoice.pk}/pdf/").status_code == 302  # to the login


@pytest.mark.django_db
def test_staff_export_a_months_items_as_csv(client, customer, employee, gpu1):
    rate_de()
    Account.objects.filter(pk=customer.pk).update(country="DE")
    customer.refresh_from_db()
    taxed, _, _ = january(customer, gpu1)
    waived, _, _ = january(employee, gpu1)
    created_instance(account=customer, plan=gpu1, created=at("2026-02-03 00:00"))
    invoice_generate(
        account=customer, month=date(2026, 2, 1), now=at("2026-02-03 05:00")
    )  # February: not in it
    client.force_login(make_user(staff=True))
    assert b'id="month-csv"' in client.get("/admin/billing/invoiceitem/").content

    response = client.get("/admin/billing/invoiceitem/csv/", {"month": "2026-01"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="invoice-items-2026-01.csv"'
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 4
    expected = sorted(
        (
            invoice.account.name,
            str(invoice.pk),
            item.label,
            str(item.quantity),
            str(item.amount),
            str(item.tax),
        )
        for invoice in (taxed, waived)
        for item in invoice.items.all()
    )
    assert (
        sorted((r["account"], r["invoice"], r["label"], r["hours"], r["amount"], r["tax"]) for r in rows)
        == expected
    )
    by_account = {r["account"]: r for r in rows}
    assert by_account[employee.name]["waived_reason"] == "employee account: not charged"
    assert (
        by_account[customer.name]["country"] == "DE"
        and by_account[customer.name]["invoice_status"] == "finalized"
    )
    assert sum(Decimal(r["total"]) for r in rows if r["account"] == customer.name) == taxed.total
    assert {r["invoice_month"] for r in rows} == {"2026-01"} and {r["plan"] for r in rows} == {gpu1.pk}

    response = client.get("/admin/billing/invoiceitem/csv/", {"month": "January"}, follow=True)
    assert b"is not a month" in response.content
