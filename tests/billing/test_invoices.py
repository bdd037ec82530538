"""Invoices as a customer reads them: Linode's examples, caps, resizes, employees, finality, corrections."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from accounts.models import AuditRecord
from billing.exceptions import InvoiceFinalized, MonthNotOver
from billing.models import Invoice, InvoiceItem, UsageSegment
from billing.services import billing_run, invoice_finalize, invoice_generate, usage_sync
from provisioning.models import Job
from tests.billing.helpers import at, created_instance, deleted, resized

pytestmark = pytest.mark.django_db

JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)
AFTER_JAN = at("2026-02-01 02:00")


def bill(account, month, now):
    usage_sync(now=now)
    return invoice_generate(account=account, month=month, now=now)


def lines(invoice):
    return [
        (i.quantity, i.unit_price, i.list_amount, i.credit, i.amount, i.waived_reason)
        for i in invoice.items.order_by("from_at")
    ]


def test_ten_hours_and_a_minute_bill_eleven_hours(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    deleted(instance, when=at("2026-01-05 20:01"))
    invoice = invoice_finalize(invoice=bill(customer, JAN, AFTER_JAN), now=AFTER_JAN)
    assert lines(invoice) == [(11, Decimal("1.5000"), Decimal("16.50"), 0, Decimal("16.50"), "")]
    assert (invoice.subtotal, invoice.tax, invoice.total) == (Decimal("16.50"), 0, Decimal("16.50"))
    item = invoice.items.get()
    assert (item.from_at, item.to_at, item.region) == (
        at("2026-01-05 10:00"),
        at("2026-01-05 20:01"),
        "us-east",
    )
    assert item.label == f"{gpu1.label} - {instance.label} ({instance.pk})"


def test_a_month_of_running_is_capped_at_the_monthly_price(customer, gpu1):
    created_instance(account=customer, plan=gpu1, created=at("2025-12-20 00:00"))
    invoice = bill(customer, JAN, AFTER_JAN)
    # 744 h x $1.50 = $1116, capped at $1000; December's part is December's invoice.
    assert lines(invoice) == [(744, Decimal("1.5000"), Decimal("1000.00"), 0, Decimal("1000.00"), "")]
    assert invoice.total == Decimal("1000.00")


def test_a_resize_mid_month_is_two_items_each_rounded_up_and_capped_on_its_own(customer, gpu1, gpu2):
    instance = created_instance(account=customer, plan=gpu1, created=at("2026-01-01 00:00"))
    resized(instance, to=gpu2, finished=at("2026-01-10 12:30"))
    deleted(instance, when=at("2026-01-31 00:00"))
    invoice = bill(customer, JAN, AFTER_JAN)
    # 228.5 h on 1 GPU -> 229 h x $1.50 = $343.50; 491.5 h on 2 GPUs -> 492 h x $3 = $1476 (under $2000).
    assert lines(invoice) == [
        (229, Decimal("1.5000"), Decimal("343.50"), 0, Decimal("343.50"), ""),
        (492, Decimal("3.0000"), Decimal("1476.00"), 0, Decimal("1476.00"), ""),
    ]
    assert invoice.total == sum(i.amount for i in invoice.items.all()) == Decimal("1819.50")


def test_usage_across_months_is_an_item_on_each_months_invoice(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=at("2026-01-31 23:30"))
    deleted(instance, when=at("2026-02-01 00:10"))
    now = at("2026-03-01 02:00")
    january, february = bill(customer, JAN, now), bill(customer, FEB, now)
    assert [i.quantity for i in january.items.all()] == [1]  # 30 minutes: one hour
    assert [i.quantity for i in february.items.all()] == [1]  # 10 minutes: one hour
    assert (january.total, february.total) == (Decimal("1.50"), Decimal("1.50"))


def test_employee_usage_is_recorded_at_zero_with_the_reason(employee, gpu1):
    instance = created_instance(account=employee, plan=gpu1, created=at("2026-01-05 10:00"))
    deleted(instance, when=at("2026-01-05 20:01"))
    invoice = bill(employee, JAN, AFTER_JAN)
    assert lines(invoice) == [
        (11, Decimal("1.5000"), Decimal("16.50"), 0, Decimal("0.00"), "employee account: not charged")
    ]
    assert invoice.total == 0


def test_the_waiver_is_decided_when_rated_from_the_accounts_kind_then(customer, gpu1):
    created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    draft = bill(customer, JAN, at("2026-01-10 00:00"))
    assert draft.total > 0
    type(customer).objects.filter(pk=customer.pk).update(kind="employee")
    assert bill(customer, JAN, AFTER_JAN).total == 0


def test_a_failed_create_is_not_on_any_invoice(customer, gpu1):
    failed = created_instance(
        account=customer, plan=gpu1, created=at("2026-01-05 10:00"), create=Job.Status.FAILED
    )
    deleted(failed, when=at("2026-01-05 12:00"))
    assert bill(customer, JAN, AFTER_JAN) is None
    assert not InvoiceItem.objects.exists()


def test_a_finalized_invoice_refuses_every_change(customer, gpu1):
    instance = created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    invoice = bill(customer, JAN, at("2026-01-20 00:00"))
    with pytest.raises(MonthNotOver, match="2026-01 is not over"):
        invoice_finalize(invoice=invoice, now=at("2026-01-31 23:59"))
    invoice = invoice_finalize(invoice=invoice, now=AFTER_JAN)
    frozen = (lines(invoice), invoice.total, invoice.finalized_at)
    deleted(instance, when=at("2026-01-06 00:00"))  # provisioning changes its mind: too late for January
    with pytest.raises(InvoiceFinalized, match="finalized and cannot change"):
        bill(customer, JAN, at("2026-02-05 00:00"))
    with pytest.raises(InvoiceFinalized):
        invoice_finalize(invoice=invoice, now=at("2026-02-05 00:00"))
    invoice.refresh_from_db()
    assert (lines(invoice), invoice.total, invoice.finalized_at) == frozen
    assert AuditRecord.objects.filter(action="invoice.finalize", target_id=str(invoice.pk)).count() == 1


def test_usage_learned_after_finalizing_is_a_new_row_on_the_next_invoice(customer, gpu1):
    known = created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    deleted(known, when=at("2026-01-05 11:00"))
    # A create still in flight when January was finalized, which succeeded after.
    late = created_instance(
        account=customer, plan=gpu1, created=at("2026-01-31 22:00"), create=Job.Status.STARTED
    )
    january = invoice_finalize(invoice=bill(customer, JAN, AFTER_JAN), now=AFTER_JAN)
    Job.objects.filter(instance=late).update(status=Job.Status.FINISHED, finished=at("2026-02-01 02:30"))
    deleted(late, when=at("2026-02-01 05:00"))
    february = bill(customer, FEB, at("2026-03-01 02:00"))
    january.refresh_from_db()
    assert [(i.quantity, i.amount) for i in january.items.all()] == [(1, Decimal("1.50"))]
    assert january.total == Decimal("1.50")
    assert [(i.period, i.quantity, i.amount) for i in february.items.order_by("from_at")] == [
        (JAN, 2, Decimal("3.00")),
        (FEB, 5, Decimal("7.50")),
    ]
    assert february.total == Decimal("10.50")


def test_the_ledger_refuses_to_bill_a_segment_month_twice(customer, gpu1):
    created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    invoice = bill(customer, JAN, AFTER_JAN)
    item = invoice.items.get()
    other = Invoice.objects.create(account=customer, period=FEB, date=at("2026-03-01 00:00"))
    copy = InvoiceItem.objects.get(pk=item.pk)
    copy.pk, copy.invoice = None, other
    with pytest.raises(IntegrityError), transaction.atomic():
        copy.save()
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(account=customer, period=JAN, date=at("2026-02-01 00:00"))


def test_the_database_refuses_amounts_that_do_not_add_up(customer, gpu1):
    created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    item = bill(customer, JAN, AFTER_JAN).items.get()
    for change in (
        {"amount": Decimal("-1"), "total": Decimal("-1")},
        {"amount": item.list_amount + 1, "total": item.list_amount + 1},  # above the price
        {"total": item.amount + 1},  # total != amount + tax
        {"waived_reason": "employee account: not charged"},  # waived but charging
        {"credit": Decimal("1.00")},  # a credit from no promotion
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            InvoiceItem.objects.filter(pk=item.pk).update(**change)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.filter(pk=item.invoice_id).update(total=Decimal("1.23"))


def test_regenerating_a_draft_bills_the_same_hours_once(customer, gpu1):
    created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    first = bill(customer, JAN, at("2026-01-06 10:00"))
    assert [i.quantity for i in first.items.all()] == [24]
    again = bill(customer, JAN, at("2026-01-07 10:00"))
    assert again.pk == first.pk and [i.quantity for i in again.items.all()] == [48]
    assert InvoiceItem.objects.count() == 1


def test_billing_run_catches_up_and_finalizes_closed_months_only(customer, gpu1):
    created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    report = billing_run(now=at("2026-03-10 00:00"))
    invoices = {i.period: i for i in Invoice.objects.filter(account=customer)}
    assert set(invoices) == {JAN, FEB}
    assert all(i.finalized for i in invoices.values())
    assert invoices[JAN].total == Decimal("957.00")  # 638 h from the 5th, 10:00
    assert invoices[FEB].total == Decimal("1000.00")  # 672 h, capped
    assert len(report.invoices) == 2 and report.usage.opened == 1
    # Within the grace hour after a month ends, the month is drafted but not frozen.
    billing_run(now=at("2026-04-01 00:30"))
    march = Invoice.objects.get(account=customer, period=MAR)
    assert march.status == Invoice.Status.DRAFT and march.total == Decimal("1000.00")
    billing_run(now=at("2026-04-01 01:30"))
    march.refresh_from_db()
    assert march.finalized and InvoiceItem.objects.filter(period=MAR).count() == 1


def test_bill_command_builds_then_finalizes_a_month(customer, gpu1, capsys, monkeypatch):
    created_instance(account=customer, plan=gpu1, created=at("2026-01-05 10:00"))
    monkeypatch.setattr("django.utils.timezone.now", lambda: at("2026-02-03 00:00"))
    call_command("bill", "--month", "2026-01")
    out = capsys.readouterr().out
    assert "1 segments opened" in out and "draft, 1 items, total 957.00" in out
    call_command("bill", "--finalize")  # the last month that ended: January
    assert "finalized, 1 items, total 957.00" in capsys.readouterr().out
    with pytest.raises(CommandError, match="2026-02 is not over"):
        call_command("bill", "--month", "2026-02", "--finalize")
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("bill", "--month", "January")
    with pytest.raises(CommandError, match="has not begun"):
        call_command("bill", "--month", "2026-05")
    assert UsageSegment.objects.count() == 1


def test_the_schedule_is_installed_by_a_migration():
    from django_q.models import Schedule

    assert Schedule.objects.filter(func="billing.tasks.billing_cycle", repeats=-1).exists()


def test_month_not_begun_is_refused(customer, gpu1):
    with pytest.raises(MonthNotOver, match="has not begun"):
        invoice_generate(account=customer, month=MAR, now=at("2026-02-10 00:00"))
    assert bill(customer, FEB, at("2026-02-10 00:00")) is None
