"""Random usage, with syncs and invoice runs interleaved at random times: every hour of usage ends on
exactly one finalized invoice item, priced by the rules, and nothing finalized ever changes."""

import math
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from billing.exceptions import InvoiceFinalized
from billing.models import Invoice, InvoiceItem
from billing.months import month_before, month_of
from billing.services import billing_run, invoice_finalize, invoice_generate, usage_sync
from provisioning.models import Job
from tests.billing.helpers import at, created_instance, deleted, resized
from tests.builders import make_account

pytestmark = pytest.mark.django_db

START = at("2026-01-01 00:00")
MONTHS = [date(2026, m, 1) for m in (1, 2, 3, 4)]
BOUNDS = [at(f"2026-0{m}-01 00:00") for m in (1, 2, 3, 4, 5)]
FINAL_RUN = at("2026-05-01 02:00")  # April and every earlier month are closed and past the grace hour
DAY = 24 * 60

# Month ends are where a create in flight or a run that came early make corrections: look there often.
near_month_ends = st.builds(
    lambda month_end, offset: month_end + offset,
    st.sampled_from([31 * DAY, 59 * DAY, 90 * DAY]),
    st.integers(-180, 180),
)
stories = st.lists(
    st.fixed_dictionaries(
        {
            "created": st.one_of(st.integers(0, 85 * DAY), near_month_ends),
            "create_ok": st.sampled_from([True, True, True, False]),
            "create_takes": st.integers(1, 180),
            "resizes": st.lists(st.tuples(st.integers(1, 20 * DAY), st.booleans()), max_size=2),
            "lives": st.one_of(st.none(), st.integers(1, 30 * DAY)),
        }
    ),
    min_size=1,
    max_size=2,
)
# "close" invoices and finalizes the month before `now` without syncing first, as a run that missed
# recent usage would: what it missed must come back as a correction on a later invoice.
operations = st.lists(
    st.tuples(
        st.one_of(st.integers(0, 110 * DAY), near_month_ends), st.sampled_from(["sync", "draft", "close"])
    ),
    min_size=1,
    max_size=8,
)


def minutes(n: int):
    return START + timedelta(minutes=n)


def expected_pieces(spans, plan_of):
    """Independently of billing's code: each plan span cut at month ends, hours rounded up, capped."""
    found = {}
    for instance_id, start, end, plan_id in spans:
        plan = plan_of[plan_id]
        for month, low, high in zip(MONTHS, BOUNDS, BOUNDS[1:], strict=False):
            lo, hi = max(start, low), min(end or high, high)
            if hi > lo:
                hours = math.ceil((hi - lo).total_seconds() / 3600)
                price = min(hours * plan.price_hourly, plan.price_monthly)
                found[(instance_id, start, month)] = (hours, price.quantize(Decimal("0.01"), ROUND_HALF_UP))
    return found


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stories=stories, operations=operations)
# Found by this test: February (a segment's last month) finalized before January was ever invoiced.
@example(
    stories=[
        {"created": 44545, "create_ok": True, "create_takes": 1, "resizes": [(111, True)], "lives": None}
    ],
    operations=[(129599, "close")],
)
# A create in flight over midnight while January is closed: its January hours are a correction on February.
@example(
    stories=[
        {"created": 31 * DAY - 60, "create_ok": True, "create_takes": 120, "resizes": [], "lives": None},
        {"created": 4 * DAY, "create_ok": True, "create_takes": 1, "resizes": [], "lives": 60},
    ],
    operations=[(31 * DAY + 30, "close")],
)
def test_interleaved_runs_bill_every_hour_exactly_once(stories, operations, gpu1, gpu2):
    plan_of = {gpu1.pk: gpu1, gpu2.pk: gpu2}
    note(f"stories={stories!r} operations={operations!r}")
    with transaction.atomic():
        account = make_account()
        spans = []
        for story in stories:
            created = minutes(story["created"])
            status = Job.Status.FINISHED if story["create_ok"] else Job.Status.FAILED
            takes = timedelta(minutes=story["create_takes"])
            instance = created_instance(
                account=account, plan=gpu1, created=created, create=status, takes=takes
            )
            moment, start = created + takes, created
            if story["create_ok"]:
                for gap, succeeds in story["resizes"]:
                    moment += timedelta(minutes=gap)
                    plan_before = instance.instance_type_id
                    target = gpu2 if plan_before == gpu1.pk else gpu1
                    job_status = Job.Status.FINISHED if succeeds else Job.Status.FAILED
                    resized(instance, to=target, finished=moment, status=job_status)
                    if succeeds:
                        spans.append((instance.pk, start, moment, plan_before))
                        start = moment
            end = None
            if story["lives"] is not None:
                end = moment + timedelta(minutes=story["lives"])
                deleted(instance, when=end)
            if story["create_ok"]:
                spans.append((instance.pk, start, end, instance.instance_type_id))

        frozen = {}
        for when, action in sorted(operations):
            now = minutes(when)
            try:
                if action == "sync":
                    usage_sync(now=now)
                elif action == "draft":
                    invoice_generate(account=account, month=month_of(now), now=now)
                else:
                    invoice = invoice_generate(account=account, month=month_before(month_of(now)), now=now)
                    if invoice is not None:
                        invoice = invoice_finalize(invoice=invoice, now=now)
                        frozen[invoice.pk] = snapshot(invoice)
            except InvoiceFinalized:
                pass  # that month was closed by an earlier run

        billing_run(now=FINAL_RUN)

        items = InvoiceItem.objects.filter(invoice__account=account).select_related("segment", "invoice")
        assert all(item.invoice.finalized for item in items)
        billed = {
            (item.segment.instance_id, item.segment.started_at, item.period): (item.quantity, item.amount)
            for item in items
        }
        assert len(billed) == len(items)
        assert billed == expected_pieces(spans, plan_of)
        # No instant of an instance's life is on two items.
        by_instance = {}
        for item in sorted(items, key=lambda i: i.from_at):
            last = by_instance.get(item.segment.instance_id)
            assert last is None or item.from_at >= last
            by_instance[item.segment.instance_id] = item.to_at
        for invoice in Invoice.objects.filter(account=account):
            assert (
                invoice.total == invoice.subtotal == sum((i.amount for i in invoice.items.all()), Decimal(0))
            )
        for invoice_id, before in frozen.items():
            assert snapshot(Invoice.objects.get(pk=invoice_id)) == before
        transaction.set_rollback(True)


def snapshot(invoice):
    return (
        invoice.status,
        invoice.total,
        invoice.finalized_at,
        sorted(invoice.items.values_list("id", "segment_id", "period", "quantity", "amount")),
    )
