"""Reads behind invoicing, the account's balances and the invoice endpoints; each costs a fixed number
of queries whatever the account's history."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Account
from billing.models import Invoice, InvoiceItem, Promotion, UsageSegment
from billing.months import month_after, month_end
from billing.rating import ZERO, Credit, Piece, pieces_of, rate
from provisioning.models import Instance, Job

MAX_ID = 2**63 - 1

# Who is not charged, and the reason written on their items. Decided when an item is rated, from the
# account's kind at that moment. Internal accounts are charged (show-back); add them here to waive.
WAIVED_KINDS = {Account.Kind.EMPLOYEE: "employee account: not charged"}


def charge_waiver(*, account: Account) -> str:
    return WAIVED_KINDS.get(account.kind, "")


@dataclass(frozen=True)
class BillablePiece:
    """A piece of usage with where it stands: on no invoice, on a draft, or on a finalized invoice."""

    piece: Piece
    segment: UsageSegment
    invoice_id: int | None
    invoice_finalized: bool

    @property
    def account_id(self) -> int:
        return self.segment.account_id


def billable_pieces(*, until: datetime, account: Account | None = None) -> list[BillablePiece]:
    """Every piece of usage up to `until` that is not settled, for one account or all.

    A segment is settled once it is closed and each of its months is on a finalized invoice (in
    whatever order they were finalized); settled segments are skipped in the query, so the cost
    follows open business, not history.
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
    holders = {
        (segment_id, period): (invoice_id, status == Invoice.Status.FINALIZED)
        for segment_id, period, invoice_id, status in InvoiceItem.objects.filter(
            segment__in=segments.values("pk")
        ).values_list("segment_id", "period", "invoice_id", "invoice__status")
    }
    found = []
    for segment in segments.select_related("instance", "instance_type").order_by("started_at", "pk"):
        for piece in pieces_of(
            segment_id=segment.pk,
            started_at=segment.started_at,
            ended_at=segment.ended_at,
            until=until,
            hourly=segment.price_hourly,
            monthly=segment.price_monthly,
            gpu=segment.instance_type.is_gpu,
        ):
            invoice_id, finalized = holders.get(piece.key, (None, False))
            found.append(BillablePiece(piece, segment, invoice_id, finalized))
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
    with no segment yet and no failed create. Each comes with its create and resize jobs and its
    segments, oldest first."""
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
        .prefetch_related(
            Prefetch(
                "jobs",
                queryset=Job.objects.filter(action__in=[Job.Action.CREATE, Job.Action.RESIZE]).order_by(
                    "created", "id"
                ),
                to_attr="billing_jobs",
            ),
            Prefetch(
                "usage_segments",
                queryset=UsageSegment.objects.order_by("started_at"),
                to_attr="billing_segments",
            ),
        )
        .order_by("id")
    )


def _promotions(*, account: Account, finalized_only: bool) -> list[Promotion]:
    promotions = Promotion.objects.filter(account=account).order_by("expires_at", "id")
    if finalized_only:
        promotions = promotions.annotate(
            spent=Coalesce(
                Sum("items__credit", filter=Q(items__invoice__status=Invoice.Status.FINALIZED)), ZERO
            )
        )
    return list(promotions)


def _credit(promotion: Promotion, *, spent: Decimal) -> Credit:
    return Credit(
        promotion_id=promotion.pk,
        starts_at=promotion.starts_at,
        expires_at=promotion.expires_at,
        remaining=promotion.credit - spent,
        gpu_only=promotion.gpu_only,
    )


def credits_of(*, account: Account) -> list[Credit]:
    """The account's promotions as credits, soonest to expire first, less what any invoice took."""
    return [_credit(p, spent=p.used) for p in _promotions(account=account, finalized_only=False)]


@dataclass(frozen=True)
class AccountBilling:
    """What GET /v4/account shows of billing. `balance` is everything invoiced (gpuadmin records no
    payments); `balance_uninvoiced` is what accrued and is on no finalized invoice, rated now."""

    balance: Decimal
    balance_uninvoiced: Decimal
    active_promotions: list[dict]


def account_billing(*, account: Account, now: datetime | None = None) -> AccountBilling:
    now = now or timezone.now()
    balance = Invoice.objects.filter(account=account, status=Invoice.Status.FINALIZED).aggregate(
        total=Coalesce(Sum("total"), ZERO)
    )["total"]
    unbilled = [bp.piece for bp in billable_pieces(until=now, account=account) if not bp.invoice_finalized]
    # Drafts are re-rated here, so only what finalized invoices took counts as spent.
    promotions = _promotions(account=account, finalized_only=True)
    credits = [_credit(p, spent=p.spent) for p in promotions]
    rated = rate(unbilled, waived_reason=charge_waiver(account=account), credits=credits)
    spent: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for item in rated:
        if item.promotion_id is not None:
            spent[item.promotion_id] += item.credit
    active = [
        _linode_promotion(promotion, remaining=credit.remaining - spent[promotion.pk])
        for promotion, credit in zip(promotions, credits, strict=True)
        if promotion.expires_at > now
    ]
    return AccountBilling(
        balance=balance,
        balance_uninvoiced=sum((item.amount for item in rated), ZERO),
        active_promotions=active,
    )


def _linode_promotion(promotion: Promotion, *, remaining: Decimal) -> dict:
    """Linode's promotion object; it sends the amounts as strings. The trial has no monthly cap of its
    own, so the cap is the whole credit and this month's remainder is the remainder."""
    return {
        "credit_monthly_cap": f"{promotion.credit:.2f}",
        "credit_remaining": f"{remaining:.2f}",
        "description": promotion.summary,
        "expire_dt": promotion.expires_at.strftime("%Y-%m-%dT%H:%M:%S"),
        "image_url": "",
        "service_type": "linode",
        "summary": promotion.summary,
        "this_month_credit_remaining": f"{remaining:.2f}",
    }


def invoices_of(*, account: Account | None) -> QuerySet[Invoice]:
    """An account's invoices as the API shows them: finalized ones only (a draft may still change)."""
    if account is None:
        return Invoice.objects.none()
    return Invoice.objects.filter(account=account, status=Invoice.Status.FINALIZED).order_by("-date", "-id")


def invoice_of(*, account: Account | None, invoice_id: int) -> Invoice | None:
    """Another account's invoice is as absent as one that never existed."""
    if not 0 < invoice_id <= MAX_ID:
        return None
    return invoices_of(account=account).filter(pk=invoice_id).first()


def invoice_items_of(*, invoice: Invoice) -> QuerySet[InvoiceItem]:
    return invoice.items.order_by("from_at", "id")
