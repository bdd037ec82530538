"""Tax: a rate per country with effective dates, applied when an invoice is finalized, on the subtotal
after credits, rounded half up to the cent once per invoice, and shared over the items exactly."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import Account
from billing.exceptions import TaxRateRefused
from billing.models import Invoice, TaxRate
from billing.rating import tax_of, tax_shares
from billing.services import invoice_finalize, invoice_generate, promotion_grant_gpu_trial, tax_rate_save
from tests.api.conftest import Api, token_for
from tests.billing.helpers import at, created_instance, deleted
from tests.builders import make_account, make_user

JAN = date(2026, 1, 1)
AFTER_JAN = at("2026-02-01 02:00")


@pytest.mark.parametrize(
    ("subtotal", "percent", "tax"),
    [
        ("0.50", "1", "0.01"),  # 0.005 exactly: half up
        ("0.49", "1", "0.00"),  # 0.0049
        ("0.10", "5", "0.01"),  # 0.005
        ("0.30", "15", "0.05"),  # 0.045
        ("0.70", "2.5", "0.02"),  # 0.0175
        ("16.50", "19", "3.14"),  # 3.135
        ("16.49", "19", "3.13"),  # 3.1331
        ("1.50", "8.875", "0.13"),  # 0.133125
        ("1000.00", "0", "0.00"),  # a zero rate taxes nothing
        ("0.00", "19", "0.00"),
    ],
)
def test_tax_rounds_half_up_to_the_cent_once(subtotal, percent, tax):
    assert tax_of(Decimal(subtotal), Decimal(percent)) == Decimal(tax)


def test_the_tax_is_shared_over_items_to_the_cent():
    # $0.01 of tax over three equal items: one cent to the first (ties go to the earlier item).
    assert tax_shares(Decimal("0.01"), [Decimal("1.00")] * 3) == [Decimal("0.01"), Decimal("0"), Decimal("0")]
    # $3.23 over $16.50 and $0.50: 3.135 and 0.095, equal remainders, the cent to the earlier item.
    assert tax_shares(Decimal("3.23"), [Decimal("16.50"), Decimal("0.50")]) == [
        Decimal("3.14"),
        Decimal("0.09"),
    ]
    # $0.05 over $1, $2, $3: 0.83, 1.67, 2.5 cents round down to 0, 1, 2; the two cents left go to
    # the largest remainders (0.83 and 0.67).
    assert tax_shares(Decimal("0.05"), [Decimal("1.00"), Decimal("2.00"), Decimal("3.00")]) == [
        Decimal("0.01"),
        Decimal("0.02"),
        Decimal("0.02"),
    ]
    assert tax_shares(Decimal("0.00"), [Decimal("5.00")]) == [Decimal("0")]
    assert tax_shares(Decimal("0.00"), []) == []


@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=12),
    st.decimals(min_value=0, max_value=Decimal("99.999"), places=3),
)
def test_shares_add_up_to_the_tax_and_follow_the_amounts(amounts_cents, percent):
    amounts = [Decimal(c) / 100 for c in amounts_cents]
    tax = tax_of(sum(amounts, Decimal(0)), percent)
    shares = tax_shares(tax, amounts)
    assert sum(shares, Decimal(0)) == tax
    total = sum(amounts, Decimal(0))
    for amount, share in zip(amounts, shares, strict=True):
        assert share >= 0 and (amount > 0 or share == 0)
        if total:
            assert abs(share - tax * amount / total) < Decimal("0.01")


def rate(country: str, percent: str, since: str, until: str | None = None, name: str = "VAT") -> TaxRate:
    return tax_rate_save(
        tax_rate=TaxRate(
            country=country,
            name=name,
            percent=Decimal(percent),
            valid_from=date.fromisoformat(since),
            valid_until=date.fromisoformat(until) if until else None,
        )
    )


def january_invoice(account, plan, *, finalize: bool = True):
    instance = created_instance(account=account, plan=plan, created=at("2026-01-05 10:00"))
    deleted(instance, when=at("2026-01-05 20:01"))  # 11 h x $1.50 = $16.50
    second = created_instance(account=account, plan=plan, created=at("2026-01-06 10:00"))
    deleted(second, when=at("2026-01-06 10:20"))  # 1 h = $1.50
    draft = invoice_generate(account=account, month=JAN, now=AFTER_JAN)
    return invoice_finalize(invoice=draft, now=AFTER_JAN) if finalize else draft


@pytest.fixture
def german(db) -> Account:
    account = make_account()
    Account.objects.filter(pk=account.pk).update(country="DE")
    account.refresh_from_db()
    return account


@pytest.mark.django_db
def test_finalizing_taxes_the_subtotal_and_the_items_add_up(german, gpu1):
    rate("DE", "19", "2020-01-01")
    draft = january_invoice(german, gpu1, finalize=False)
    assert (draft.tax, draft.tax_rate) == (0, None)  # a draft is not taxed yet
    invoice = january_invoice_finalized = invoice_finalize(invoice=draft, now=AFTER_JAN)
    # 19 % of $18.00 = $3.42; shared 3.135 and 0.285, the cent left over to the earlier item.
    assert (invoice.subtotal, invoice.tax, invoice.total) == (
        Decimal("18.00"),
        Decimal("3.42"),
        Decimal("21.42"),
    )
    items = list(invoice.items.order_by("from_at"))
    assert [(i.amount, i.tax, i.total) for i in items] == [
        (Decimal("16.50"), Decimal("3.14"), Decimal("19.64")),
        (Decimal("1.50"), Decimal("0.28"), Decimal("1.78")),
    ]
    assert sum(i.total for i in items) == invoice.total
    assert (january_invoice_finalized.tax_name, january_invoice_finalized.tax_percent) == (
        "VAT",
        Decimal("19.000"),
    )


@pytest.mark.django_db
def test_the_api_shows_the_tax_and_its_summary(german, gpu1):
    rate("DE", "19", "2020-01-01")
    invoice = january_invoice(german, gpu1)
    api = Api(Client(), token_for(make_user(account=german)))
    body = api.get(f"/v4/account/invoices/{invoice.pk}").json()
    assert (body["subtotal"], body["tax"], body["total"]) == (18.0, 3.42, 21.42)
    assert body["tax_summary"] == [{"name": "VAT (19%)", "tax": 3.42}]
    items = api.get(f"/v4/account/invoices/{invoice.pk}/items").json()["data"]
    assert [(i["amount"], i["tax"], i["total"]) for i in items] == [(16.5, 3.14, 19.64), (1.5, 0.28, 1.78)]


@pytest.mark.django_db
def test_no_rate_no_tax_and_a_zero_rate_is_shown(customer, german, gpu1):
    rate("FR", "20", "2020-01-01")
    assert customer.country == ""
    untaxed = january_invoice(customer, gpu1)
    assert (untaxed.tax, untaxed.total, untaxed.tax_rate) == (0, Decimal("18.00"), None)
    rate("DE", "0", "2020-01-01", name="Reverse charge")
    zero = january_invoice(german, gpu1)
    assert (zero.tax, zero.total, zero.tax_name) == (0, Decimal("18.00"), "Reverse charge")
    api = Api(Client(), token_for(make_user(account=german)))
    assert api.get(f"/v4/account/invoices/{zero.pk}").json()["tax_summary"] == [
        {"name": "Reverse charge (0%)", "tax": 0.0}
    ]
    api = Api(Client(), token_for(make_user(account=customer)))
    assert api.get(f"/v4/account/invoices/{untaxed.pk}").json()["tax_summary"] == []


@pytest.mark.django_db
def test_the_rate_in_force_on_the_invoice_date_applies(german, gpu1):
    """January's invoice is dated 2026-02-01 00:00 UTC, so a change on January 15th applies to all of
    January's usage, and so does one that takes effect on February 1st; one that ended then does not."""
    rate("DE", "16", "2020-01-01", "2026-01-15")
    rate("DE", "19", "2026-01-15", "2026-02-01")
    rate("DE", "21", "2026-02-01")
    invoice = january_invoice(german, gpu1)
    assert (invoice.tax_percent, invoice.tax) == (Decimal("21.000"), Decimal("3.78"))


@pytest.mark.django_db
def test_tax_is_on_what_is_charged_after_the_trial_and_never_on_a_waived_item(
    german, gpu1, employee, settings
):
    settings.GPUADMIN_GPU_TRIAL_CREDIT = "10.00"
    rate("DE", "19", "2020-01-01")
    promotion_grant_gpu_trial(account=german, now=at("2026-01-05 00:00"))
    invoice = january_invoice(german, gpu1)
    # $18.00 of usage, $10.00 of it paid by the trial: 19 % of $8.00 = $1.52.
    assert (invoice.subtotal, invoice.tax, invoice.total) == (
        Decimal("8.00"),
        Decimal("1.52"),
        Decimal("9.52"),
    )
    assert [i.tax for i in invoice.items.order_by("from_at")] == [Decimal("1.24"), Decimal("0.28")]
    Account.objects.filter(pk=employee.pk).update(country="DE")
    employee.refresh_from_db()
    waived = january_invoice(employee, gpu1)
    assert (waived.subtotal, waived.tax, waived.total) == (0, 0, 0)


@pytest.mark.django_db
def test_overlapping_rates_of_a_country_are_refused(db):
    rate("DE", "19", "2020-01-01", "2026-01-01")
    rate("FR", "20", "2020-01-01")  # another country: no overlap
    for since, until in (("2025-12-31", None), ("2019-01-01", "2020-01-02"), ("2021-01-01", "2021-02-01")):
        with pytest.raises(TaxRateRefused, match="already has a rate"):
            rate("DE", "7", since, until)
    rate("DE", "21", "2026-01-01")  # right after: the periods are half open
    with pytest.raises(TaxRateRefused, match="already has a rate"):
        rate("DE", "7", "2030-01-01")
    assert TaxRate.objects.filter(country="DE").count() == 2


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_database_refuses_overlapping_periods(db):
    rate("DE", "19", "2020-01-01", "2026-01-01")
    with pytest.raises(IntegrityError), transaction.atomic():
        TaxRate.objects.create(country="DE", name="VAT", percent=7, valid_from=date(2025, 6, 1))
    TaxRate.objects.create(country="DE", name="VAT", percent=7, valid_from=date(2026, 1, 1))


@pytest.mark.django_db
def test_a_rate_that_taxed_an_invoice_keeps_its_terms(german, gpu1):
    used = rate("DE", "19", "2020-01-01")
    january_invoice(german, gpu1)
    used.percent = Decimal("20")
    with pytest.raises(TaxRateRefused, match="cannot change"):
        tax_rate_save(tax_rate=used)
    used.refresh_from_db()
    used.valid_until = date(2026, 2, 1)  # the day of the invoice it taxed: too early
    with pytest.raises(TaxRateRefused, match="cannot end"):
        tax_rate_save(tax_rate=used)
    used.valid_until = date(2026, 7, 1)
    tax_rate_save(tax_rate=used)
    assert Invoice.objects.get().tax_percent == Decimal("19.000")


@pytest.mark.django_db
def test_bad_rates_are_refused_by_validation_and_by_the_database(db):
    from django.core.exceptions import ValidationError

    for bad in (
        {"country": "de"},
        {"percent": Decimal("-1")},
        {"percent": Decimal("100")},
        {"valid_until": date(2019, 1, 1)},
    ):
        fields = {
            "country": "DE",
            "name": "VAT",
            "percent": Decimal("19"),
            "valid_from": date(2020, 1, 1),
            **bad,
        }
        with pytest.raises((ValidationError, TaxRateRefused)):
            tax_rate_save(tax_rate=TaxRate(**fields))
        with pytest.raises(IntegrityError), transaction.atomic():
            TaxRate.objects.create(**fields)
    assert not TaxRate.objects.exists()
