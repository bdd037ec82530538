"""Syncs, draft rebuilds and billing runs racing on one account: every hour still billed once."""

from datetime import date
from decimal import Decimal

import pytest

from billing.exceptions import InvoiceFinalized
from billing.models import Invoice, InvoiceItem, UsageSegment
from billing.services import billing_run, invoice_generate, usage_sync
from tests.billing.helpers import at, created_instance, deleted, resized
from tests.builders import make_account, make_gpu_plan, make_region
from tests.concurrency import race as concurrently

THREADS = 12
NOW = at("2026-02-01 02:00")


def race(calls):
    return concurrently(calls, what="a billing call")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_syncs_drafts_and_runs_bill_each_hour_once():
    make_region("us-east")
    gpu1, gpu2 = make_gpu_plan(1), make_gpu_plan(2)
    account = make_account()
    for day in range(3, 9):
        instance = created_instance(account=account, plan=gpu1, created=at(f"2026-01-0{day} 10:00"))
        resized(instance, to=gpu2, finished=at(f"2026-01-0{day} 12:30"))
        deleted(instance, when=at(f"2026-01-0{day} 20:00"))
    kinds = [
        lambda: usage_sync(now=NOW),
        lambda: invoice_generate(account=account, month=date(2026, 1, 1), now=NOW),
        lambda: billing_run(now=NOW),
    ]
    outcomes = race([kinds[i % 3] for i in range(THREADS)])

    errors = [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, InvoiceFinalized)]
    assert errors == []
    # A billing run that lost the race says so in its report instead of failing the task.
    assert not any(isinstance(o, InvoiceFinalized) for i, o in enumerate(outcomes) if i % 3 == 2)
    assert UsageSegment.objects.count() == 12
    january = Invoice.objects.get(account=account)
    assert january.finalized
    # Each instance: 2.5 h -> 3 h x $1.50 and 7.5 h -> 8 h x $3.00 = $28.50.
    items = InvoiceItem.objects.filter(invoice=january)
    assert items.count() == 12
    assert january.total == sum(i.amount for i in items) == Decimal("28.50") * 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_bill_finalize_runs_at_once_both_succeed_and_bill_once(monkeypatch):
    from io import StringIO

    from django.core.management import call_command

    make_region("us-east")
    gpu1 = make_gpu_plan(1)
    accounts = [make_account() for _ in range(4)]
    for account in accounts:
        instance = created_instance(account=account, plan=gpu1, created=at("2026-01-05 10:00"))
        deleted(instance, when=at("2026-01-05 20:01"))
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    outputs = [StringIO(), StringIO()]
    outcomes = race(
        [
            lambda out=out: call_command("bill", "--month", "2026-01", "--finalize", stdout=out)
            for out in outputs
        ]
    )
    assert outcomes == [None, None]  # no CommandError: the one that waited found the work done
    text = outputs[0].getvalue() + outputs[1].getvalue()
    assert text.count("finalized, 1 items, total 16.50") == 4
    assert text.count("was finalized already") + text.count("nothing to bill") >= 1
    assert Invoice.objects.filter(status=Invoice.Status.FINALIZED).count() == 4
    assert InvoiceItem.objects.count() == 4
