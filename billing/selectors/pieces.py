"""What is billable: usage segments cut into pieces, which invoice holds each, and what a sync
would write; each read costs a fixed number of queries whatever the account's history."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from accounts.models import Account
from billing.models import Invoice, InvoiceItem, UsageSegment
from billing.months import month_after, month_end
from billing.rating import Piece, pieces_of
from billing.usage import InstanceFacts, JobFact, SegmentFact, sync_plan
from inventory.models import InstanceType
from provisioning.models import Instance, Job

MAX_ID = 2**63 - 1


# Who is not charged, and the reason written on their items. Decided when an item is rated, from the
# account's kind at that moment. Internal accounts are charged (show-back); add them here to waive.
WAIVED_KINDS = {Account.Kind.EMPLOYEE: "employee account: not charged"}


def charge_waiver(*, account: Account) -> str:
    return WAIVED_KINDS.get(account.kind, "")


@dataclass(frozen=True)
class SegmentRow:
    """What an invoice item needs of a usage segment, read as plain values (no model instances)."""

    id: int
    account_id: int
    instance_id: int
    instance_label: str
    region_id: str
    plan_label: str
    gpu: bool
    hourly: Decimal
    monthly: Decimal
    started_at: datetime
    ended_at: datetime | None

    @property
    def item_label(self) -> str:
        return f"{self.plan_label} - {self.instance_label} ({self.instance_id})"


@dataclass(frozen=True)
class BillablePiece:
    """A piece of usage with where it stands: on no invoice, on a draft, or on a finalized invoice."""

    piece: Piece
    segment: SegmentRow
    invoice_id: int | None
    invoice_finalized: bool

    @property
    def account_id(self) -> int:
        return self.segment.account_id


SEGMENT_COLUMNS = (
    "pk",
    "account_id",
    "instance_id",
    "instance__label",
    "instance__region_id",
    "instance_type__label",
    "instance_type__type_class",
    "price_hourly",
    "price_monthly",
    "started_at",
    "ended_at",
)


def billable_pieces(
    *,
    until: datetime,
    account: Account | None = None,
    account_ids: Iterable[int] | None = None,
    ends: dict[int, datetime] | None = None,
) -> list[BillablePiece]:
    """Every piece of usage up to `until` that is not settled, for one account, some, or all.

    A segment is settled once it is closed and each of its months is on a finalized invoice (in
    whatever order they were finalized); settled segments are skipped in the query, so the cost
    follows open business, not history. `ends` closes open segments in memory (segment id -> end):
    what a sync would write, for a read that must not write. Two queries, whatever the number of rows.
    """
    finalized_items = (
        InvoiceItem.objects.filter(segment=OuterRef("pk"), invoice__status=Invoice.Status.FINALIZED)
        .values("segment")
        .annotate(count=Count("pk"))
        .values("count")
    )
    segments = (
        UsageSegment.objects.filter(started_at__lt=until)
        .annotate(finalized_pieces=Coalesce(Subquery(finalized_items), 0))
        .filter(Q(ended_at__isnull=True) | Q(finalized_pieces__lt=F("piece_count")))
    )
    if account is not None:
        segments = segments.filter(account=account)
    if account_ids is not None:
        segments = segments.filter(account_id__in=list(account_ids))
    holders = {
        (segment_id, period): (invoice_id, status == Invoice.Status.FINALIZED)
        for segment_id, period, invoice_id, status in InvoiceItem.objects.filter(
            segment__in=segments.values("pk")
        ).values_list("segment_id", "period", "invoice_id", "invoice__status")
    }
    ends = ends or {}
    found = []
    for values in segments.order_by("started_at", "pk").values_list(*SEGMENT_COLUMNS):
        row = SegmentRow(*values[:6], values[6] == InstanceType.TypeClass.GPU, *values[7:])
        for piece in pieces_of(
            segment_id=row.id,
            started_at=row.started_at,
            ended_at=ends.get(row.id, row.ended_at),
            until=until,
            hourly=row.hourly,
            monthly=row.monthly,
            gpu=row.gpu,
        ):
            invoice_id, finalized = holders.get(piece.key, (None, False))
            found.append(BillablePiece(piece, row, invoice_id, finalized))
    return found


def finalized_periods(*, account_ids) -> set[tuple[int, date]]:
    return set(
        Invoice.objects.filter(account_id__in=account_ids, status=Invoice.Status.FINALIZED).values_list(
            "account_id", "period"
        )
    )


def invoice_targets(*, pieces: list[BillablePiece], before: date) -> dict[int, set[date]]:
    """Which months need an invoice, per account, among the months before `before`.

    A piece belongs to its own month's invoice; when that one is finalized already, the piece is a
    late correction and goes on the next month's invoice that is still open.
    """
    open_pieces = [bp for bp in pieces if not bp.invoice_finalized]
    finalized = finalized_periods(account_ids={bp.account_id for bp in open_pieces})
    targets: dict[int, set[date]] = defaultdict(set)
    for bp in open_pieces:
        month = bp.piece.month
        while (bp.account_id, month) in finalized:
            month = month_after(month)
        if month < before:
            targets[bp.account_id].add(month)
    return dict(targets)


def accounts_to_invoice(*, month: date, now: datetime) -> list[Account]:
    """Accounts whose invoice for `month` has something to bill, or is a draft already."""
    pieces = billable_pieces(until=min(now, month_end(month)))
    targets = invoice_targets(pieces=pieces, before=month_after(month))
    ids = {account_id for account_id, months in targets.items() if month in months}
    ids |= set(
        Invoice.objects.filter(period=month, status=Invoice.Status.DRAFT).values_list("account_id", flat=True)
    )
    return list(Account.objects.filter(pk__in=ids).order_by("pk"))


def instances_to_sync(*, now: datetime) -> QuerySet[Instance]:
    """Instances whose usage may still change: not deleted (as of `now`), or with an open segment, or
    with no segment yet and no failed create."""
    open_segment = UsageSegment.objects.filter(instance=OuterRef("pk"), ended_at__isnull=True)
    any_segment = UsageSegment.objects.filter(instance=OuterRef("pk"))
    failed_create = Job.objects.filter(
        instance=OuterRef("pk"), action=Job.Action.CREATE, status=Job.Status.FAILED
    )
    return (
        Instance.objects.filter(created__lte=now)
        .filter(
            Q(deleted_at__isnull=True)
            | Q(deleted_at__gt=now)
            | Exists(open_segment)
            | (~Exists(any_segment) & ~Exists(failed_create))
        )
        .order_by("id")
    )


def sync_facts(
    *, now: datetime, account_ids: Iterable[int] | None = None, after_id: int = 0, limit: int | None = None
) -> list[InstanceFacts]:
    """The instances to sync (ids above `after_id`, at most `limit`), each with its create and resize
    jobs and its segments, oldest first: three queries, as plain values."""
    instances = instances_to_sync(now=now).filter(id__gt=after_id)
    if account_ids is not None:
        instances = instances.filter(account_id__in=list(account_ids))
    rows = instances.values_list("id", "account_id", "created", "deleted_at", "status", "instance_type_id")
    facts = {row[0]: InstanceFacts(*row) for row in (rows[:limit] if limit else rows)}
    if not facts:
        return []
    chosen = instances.filter(id__lte=max(facts)).values("id")
    jobs = Job.objects.filter(
        instance_id__in=chosen, action__in=[Job.Action.CREATE, Job.Action.RESIZE]
    ).order_by("instance_id", "created", "id")
    for instance_id, *job in jobs.values_list("instance_id", "id", "action", "status", "finished", "params"):
        facts[instance_id].jobs.append(JobFact(*job))
    segments = UsageSegment.objects.filter(instance_id__in=chosen).order_by("instance_id", "started_at")
    for instance_id, *segment in segments.values_list(
        "instance_id", "id", "instance_type_id", "started_at", "ended_at"
    ):
        facts[instance_id].segments.append(SegmentFact(*segment))
    return list(facts.values())


def unbilled_pieces(*, account: Account, now: datetime) -> list[Piece]:
    """The account's usage up to `now` that no finalized invoice holds, including what the last sync
    has not written yet: instances not synced are planned in memory (the same plan `usage_sync` would
    write, priced at the plan's rates now, as a sync now would snapshot them). Writes nothing; a
    fixed number of queries whatever the number of instances."""
    plans = InstanceType.objects.in_bulk()
    ends: dict[int, datetime] = {}
    unwritten = []
    for plan in (sync_plan(facts, now) for facts in sync_facts(now=now, account_ids=[account.pk])):
        if plan.close is not None:
            ends[plan.close.segment_id] = plan.close.ended_at
        unwritten += plan.opens
    pending: list[Piece] = []
    for position, period in enumerate(unwritten, start=1):
        instance_type = plans[period.plan_id]
        pending += pieces_of(
            segment_id=-position,  # not written, so no id: negative ones never meet a real segment's
            started_at=period.start,
            ended_at=period.end,
            until=now,
            hourly=instance_type.price_hourly,
            monthly=instance_type.price_monthly,
            gpu=instance_type.is_gpu,
        )
    written = billable_pieces(until=now, account=account, ends=ends)
    return [bp.piece for bp in written if not bp.invoice_finalized] + pending
