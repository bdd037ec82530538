"""Every write of billing: usage segments from provisioning's rows, invoices, the GPU trial.

Billing sits above provisioning: it reads Instance and Job rows and never asks provisioning to call
it (no signals, no hooks). Usage therefore lags provisioning until `usage_sync` runs: the scheduled
task runs it every few minutes, and every invoice is built right after a sync of its account.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from accounts.services import audit_record
from billing import selectors
from billing.exceptions import InvoiceFinalized, MonthNotOver, PromotionRefused
from billing.models import Invoice, InvoiceItem, Promotion, UsageSegment
from billing.months import month_end, month_label, month_of
from billing.rating import ZERO, piece_count, rate
from billing.timeline import PlanPeriod, ResizeFact, as_of, plan_periods
from inventory.models import InstanceType
from provisioning.models import Instance, Job

logger = logging.getLogger(__name__)

GPU_TRIAL_DAYS = 7
# Creates and resizes in flight at midnight land within minutes; finalizing an hour after the month
# closes keeps their usage on its own month's invoice rather than as a correction on the next one.
FINALIZE_GRACE = timedelta(hours=1)


@dataclass
class UsageSyncReport:
    opened: int = 0
    closed: int = 0
    raced: int = 0
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"{self.opened} segments opened, {self.closed} closed"
        if self.raced:
            text += f", {self.raced} instances left to a concurrent sync"
        if self.problems:
            text += f", {len(self.problems)} problems"
        return text


def usage_sync(*, now: datetime | None = None, account: Account | None = None) -> UsageSyncReport:
    """Open and close usage segments so that they say what provisioning's rows say, as of `now`
    (for one account, or all).

    Idempotent: a second run finds nothing to do. Segments are only ever appended and closed; when
    provisioning's rows contradict a segment already written (an edited `created`, say), the segment
    is left alone and the contradiction reported, because it may be billed already.
    """
    now = now or timezone.now()
    plans = InstanceType.objects.in_bulk()
    report = UsageSyncReport()
    instances = selectors.instances_to_sync(now=now)
    if account is not None:
        instances = instances.filter(account=account)
    for instance in instances.iterator(chunk_size=500):
        try:
            with transaction.atomic():
                _instance_sync(instance=instance, now=now, plans=plans, report=report)
        except IntegrityError:
            # Another sync wrote the same segment between our read and our write; the constraints
            # turned the second write away, and the next run will find the rows in place.
            report.raced += 1
    for problem in report.problems:
        logger.warning("usage sync: %s", problem)
    return report


def _periods(instance: Instance, now: datetime) -> list[PlanPeriod] | None:
    """The plan periods of an instance as of `now`, or None when it is not billable (yet)."""
    jobs = instance.billing_jobs
    creates = [job for job in jobs if job.action == Job.Action.CREATE]
    succeeded = [
        job for job in creates if job.status == Job.Status.FINISHED and job.finished and job.finished <= now
    ]
    # A create that failed (or has not finished) is not billed; its instance had no usable machine.
    if (creates and not succeeded) or instance.status == Instance.Status.FAILED:
        return None
    resizes = [
        ResizeFact(
            job_id=job.pk,
            finished=job.finished,
            succeeded=job.status == Job.Status.FINISHED,
            from_plan=job.params["from"],
            to_plan=job.params["to"],
        )
        for job in jobs
        if job.action == Job.Action.RESIZE
        and job.finished is not None
        and job.status in (Job.Status.FINISHED, Job.Status.FAILED)
    ]
    periods = plan_periods(
        created=instance.created,
        deleted_at=instance.deleted_at,
        current_plan=instance.instance_type_id,
        create_job_id=succeeded[0].pk if succeeded else None,
        resizes=resizes,
    )
    return as_of(periods, now)


def _instance_sync(*, instance: Instance, now: datetime, plans: dict, report: UsageSyncReport) -> None:
    periods = _periods(instance, now)
    if periods is None:
        return
    segments: list[UsageSegment] = list(instance.billing_segments)
    for position, want in enumerate(periods):
        if position == len(segments):
            segments.append(_segment_open(instance=instance, period=want, plans=plans, after=segments))
            report.opened += 1
            continue
        have = segments[position]
        if (have.started_at, have.instance_type_id) != (want.start, want.plan_id):
            report.problems.append(
                f"instance {instance.pk}: segment {have.pk} says {have.instance_type_id} from "
                f"{have.started_at:%Y-%m-%d %H:%M:%S}, provisioning says {want.plan_id} from "
                f"{want.start:%Y-%m-%d %H:%M:%S}; left as it is"
            )
            return
        if have.ended_at == want.end:
            continue
        if have.ended_at is None:
            have.ended_at, have.piece_count = want.end, piece_count(have.started_at, want.end)
            UsageSegment.objects.filter(pk=have.pk, ended_at__isnull=True).update(
                ended_at=have.ended_at, piece_count=have.piece_count
            )
            report.closed += 1
        elif want.end is None and position == len(periods) - 1:
            return  # the rows were written by a sync that looked later than `now`
        else:
            report.problems.append(
                f"instance {instance.pk}: segment {have.pk} ended {have.ended_at:%Y-%m-%d %H:%M:%S}, "
                f"provisioning now says {want.end}; left as it is"
            )
            return
    if len(segments) > len(periods) and periods and periods[-1].end is not None:
        report.problems.append(
            f"instance {instance.pk}: {len(segments)} segments but provisioning explains {len(periods)}"
        )


def _segment_open(
    *, instance: Instance, period: PlanPeriod, plans: dict, after: list[UsageSegment]
) -> UsageSegment:
    plan = plans[period.plan_id]
    segment = UsageSegment(
        account_id=instance.account_id,
        instance=instance,
        instance_type=plan,
        price_hourly=plan.price_hourly,
        price_monthly=plan.price_monthly,
        started_at=period.start,
        ended_at=period.end,
        piece_count=None if period.end is None else piece_count(period.start, period.end),
        previous=after[-1] if after else None,
        job_id=period.job_id,
    )
    # Field checks only: the uniqueness and CHECK constraints are the database's, and a concurrent
    # sync is told apart by the IntegrityError the caller catches.
    segment.full_clean(validate_unique=False, validate_constraints=False)
    segment.save()
    return segment


def _account_locked(account: Account) -> Account:
    # One invoicing transaction per account at a time: two drafts must not both take a late piece or
    # both spend the same credit.
    # NO KEY: a concurrent sync inserting a segment takes a key-share lock on the account (its foreign
    # key) and must not wait for this lock while this transaction waits for its segment.
    return Account.objects.select_for_update(no_key=True).get(pk=account.pk)


def invoice_generate(*, account: Account, month: date, now: datetime | None = None) -> Invoice | None:
    """Sync the account's usage, then build (or rebuild) its draft invoice for `month`.

    The draft holds the month's pieces (up to now for a month not over) and the late pieces of
    earlier months whose invoice is finalized. Returns None when there is nothing to bill and no
    draft exists. A finalized invoice is refused.
    """
    now = now or timezone.now()
    if month > month_of(now):
        raise MonthNotOver(f"{month_label(month)} has not begun; there is nothing to invoice yet.")
    with transaction.atomic():
        account = _account_locked(account)
        invoice = Invoice.objects.filter(account=account, period=month).first()
        if invoice is not None and invoice.finalized:
            raise _finalized(invoice)
        if invoice is not None:
            _draft_clear(invoice)
        # An invoice built from segments that missed a delete would bill the month to its end.
        usage_sync(now=now, account=account)
        pieces = _pieces_for(account=account, month=month, now=now)
        if invoice is None:
            if not pieces:
                return None
            invoice = Invoice(account=account, period=month, date=month_end(month))
            invoice.full_clean(validate_constraints=False)
            invoice.save()
        _draft_fill(invoice=invoice, account=account, pieces=pieces)
    return invoice


def _finalized(invoice: Invoice) -> InvoiceFinalized:
    return InvoiceFinalized(
        f"Invoice {invoice.pk} ({invoice.account}, {month_label(invoice.period)}) is finalized and cannot "
        "change; usage found later is billed on the next invoice."
    )


def _pieces_for(*, account: Account, month: date, now: datetime) -> list[selectors.BillablePiece]:
    found = selectors.billable_pieces(until=min(now, month_end(month)), account=account)
    finalized = selectors.finalized_periods(account_ids=[account.pk])
    return [
        bp
        for bp in found
        if bp.invoice_id is None
        and (
            bp.piece.month == month or (bp.piece.month < month and (account.pk, bp.piece.month) in finalized)
        )
    ]


def _draft_clear(invoice: Invoice) -> None:
    """Take a draft's items off it, giving back the credit they spent."""
    spent = defaultdict(lambda: ZERO)
    for promotion_id, credit in invoice.items.exclude(promotion=None).values_list("promotion_id", "credit"):
        spent[promotion_id] += credit
    for promotion in Promotion.objects.select_for_update().filter(pk__in=spent).order_by("pk"):
        promotion.used -= spent[promotion.pk]
        promotion.save(update_fields=["used"])
    invoice.items.all().delete()


def _draft_fill(*, invoice: Invoice, account: Account, pieces: list[selectors.BillablePiece]) -> None:
    promotions = {
        p.pk: p for p in Promotion.objects.select_for_update().filter(account=account).order_by("pk")
    }
    rated = rate(
        [bp.piece for bp in pieces],
        waived_reason=selectors.charge_waiver(account=account),
        credits=selectors.credits_of(account=account),
    )
    segments = {bp.piece.key: bp.segment for bp in pieces}
    items = []
    for item in rated:
        segment = segments[item.piece.key]
        row = InvoiceItem(
            invoice=invoice,
            segment=segment,
            period=item.piece.month,
            label=f"{segment.instance_type.label} - {segment.instance.label} ({segment.instance_id})",
            region=segment.instance.region_id,
            from_at=item.piece.start,
            to_at=item.piece.end,
            quantity=item.quantity,
            unit_price=item.piece.hourly,
            list_amount=item.list_amount,
            credit=item.credit,
            promotion_id=item.promotion_id,
            waived_reason=item.waived_reason,
            amount=item.amount,
            tax=ZERO,
            total=item.amount,
        )
        # Field checks only (no per-row queries); the constraints are checked by the insert.
        row.clean_fields(exclude=["invoice", "segment", "promotion"])
        items.append(row)
        if item.promotion_id is not None:
            promotions[item.promotion_id].used += item.credit
    InvoiceItem.objects.bulk_create(items)
    for promotion in promotions.values():
        promotion.save(update_fields=["used"])
    invoice.subtotal = sum((row.amount for row in items), ZERO)
    invoice.tax = ZERO
    invoice.total = invoice.subtotal + invoice.tax
    invoice.full_clean(validate_constraints=False)
    invoice.save(update_fields=["subtotal", "tax", "total", "updated"])


def invoice_finalize(
    *, invoice: Invoice, now: datetime | None = None, actor: AbstractBaseUser | None = None
) -> Invoice:
    """Sync the account's usage, rebuild the draft from it and freeze it. Only once its month is over."""
    now = now or timezone.now()
    with transaction.atomic():
        _account_locked(invoice.account)
        invoice = Invoice.objects.select_related("account").get(pk=invoice.pk)
        if invoice.finalized:
            raise _finalized(invoice)
        if now < month_end(invoice.period):
            raise MonthNotOver(
                f"{month_label(invoice.period)} is not over until "
                f"{month_end(invoice.period):%Y-%m-%d %H:%M} UTC; its invoice can be finalized after that."
            )
        _draft_clear(invoice)
        usage_sync(now=now, account=invoice.account)
        _draft_fill(
            invoice=invoice,
            account=invoice.account,
            pieces=_pieces_for(account=invoice.account, month=invoice.period, now=now),
        )
        invoice.status = Invoice.Status.FINALIZED
        invoice.finalized_at = now
        invoice.full_clean(validate_constraints=False)
        invoice.save(update_fields=["status", "finalized_at", "updated"])
        audit_record(actor=actor, action="invoice.finalize", target=invoice, detail=f"total {invoice.total}")
    return invoice


def promotion_grant_gpu_trial(
    *, account: Account, actor: AbstractBaseUser | None = None, now: datetime | None = None
) -> Promotion:
    """A credit of GPUADMIN_GPU_TRIAL_CREDIT for GPU usage in the next 7 days; what is left then expires."""
    now = now or timezone.now()
    if selectors.charge_waiver(account=account):
        raise PromotionRefused(
            f"{account} is not charged ({account.get_kind_display().lower()} account); "
            "a trial credit would never be spent."
        )
    promotion = Promotion(
        account=account,
        kind=Promotion.Kind.GPU_TRIAL,
        summary=f"GPU trial: ${settings.GPUADMIN_GPU_TRIAL_CREDIT} for {GPU_TRIAL_DAYS} days of GPU usage",
        credit=Decimal(settings.GPUADMIN_GPU_TRIAL_CREDIT),
        gpu_only=True,
        starts_at=now,
        expires_at=now + timedelta(days=GPU_TRIAL_DAYS),
        granted_by=actor if actor is not None and actor.is_authenticated else None,
    )
    promotion.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            if Promotion.objects.filter(account=account, kind=Promotion.Kind.GPU_TRIAL).exists():
                raise PromotionRefused(f"{account} has had its GPU trial already.")
            promotion.save()
            audit_record(actor=actor, action="promotion.grant", target=promotion, detail=promotion.summary)
    except IntegrityError as exc:  # granted by someone else between the check and the insert
        raise PromotionRefused(f"{account} has had its GPU trial already.") from exc
    return promotion


@dataclass
class BillingRunReport:
    usage: UsageSyncReport
    invoices: list[Invoice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        finalized = sum(invoice.finalized for invoice in self.invoices)
        text = f"usage: {self.usage}; {len(self.invoices)} invoices built, {finalized} finalized"
        if self.problems:
            text += f"; {len(self.problems)} problems"
        return text


def billing_run(*, now: datetime | None = None) -> BillingRunReport:
    """What the schedule does: sync usage, then invoice every closed month that has unbilled usage,
    oldest first, finalizing once the month has been over for FINALIZE_GRACE. Catches up by itself
    after a missed run."""
    now = now or timezone.now()
    report = BillingRunReport(usage=usage_sync(now=now))
    current = month_of(now)
    pieces = selectors.billable_pieces(until=min(now, month_end(current)))
    targets = selectors.invoice_targets(pieces=pieces, before=current)
    accounts = Account.objects.in_bulk(targets)
    for account_id in sorted(targets):
        for month in sorted(targets[account_id]):
            try:
                invoice = invoice_generate(account=accounts[account_id], month=month, now=now)
                if invoice is not None and now >= month_end(month) + FINALIZE_GRACE:
                    invoice = invoice_finalize(invoice=invoice, now=now)
            except InvoiceFinalized as exc:  # a run overlapping this one got there first
                report.problems.append(exc.message)
                continue
            if invoice is not None:
                report.invoices.append(invoice)
    return report
