"""Usage segments from provisioning's rows: `usage_sync`, set based, one transaction, syncs taking turns."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account
from billing import selectors
from billing.bulk import bulk_insert, bulk_set
from billing.models import UsageSegment
from billing.rating import piece_count
from billing.usage import SyncPlan, sync_plan
from inventory.models import InstanceType

logger = logging.getLogger(__name__)

# Instances read per round of a sync: bounded memory, a few statements per round.
SYNC_CHUNK = 20_000
# pg_advisory_xact_lock key that makes syncs take turns ("usage" in ASCII).
SYNC_LOCK_KEY = 0x7573616765


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


def usage_sync(
    *, now: datetime | None = None, account: Account | None = None, account_ids: Iterable[int] | None = None
) -> UsageSyncReport:
    """Open and close usage segments so that they say what provisioning's rows say, as of `now`
    (for one account, some, or all).

    Idempotent: a second run finds nothing to do. Segments are only ever appended and closed; when
    provisioning's rows contradict a segment already written (an edited `created`, say), the segment
    is left alone and the contradiction reported, because it may be billed already. One transaction;
    syncs take turns (an advisory lock on PostgreSQL) so two never write the same segment, and where
    the database cannot lock (SQLite), a segment another sync wrote meanwhile is skipped, counted as
    raced.
    """
    now = now or timezone.now()
    if account is not None:
        account_ids = [account.pk]
    elif account_ids is not None:
        account_ids = list(account_ids)
    report = UsageSyncReport()
    with transaction.atomic():
        _sync_turn()
        instance_types = InstanceType.objects.in_bulk()
        after = 0
        while True:
            facts = selectors.sync_facts(now=now, account_ids=account_ids, after_id=after, limit=SYNC_CHUNK)
            if facts:
                after = facts[-1].id
                _sync_write([sync_plan(instance, now) for instance in facts], instance_types, report)
            if len(facts) < SYNC_CHUNK:
                break
    for problem in report.problems:
        logger.warning("usage sync: %s", problem)
    return report


def _sync_turn() -> None:
    """Wait for any other sync to commit (PostgreSQL; SQLite serialises writers by itself)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SYNC_LOCK_KEY])


def _sync_write(plans: list[SyncPlan], instance_types: dict, report: UsageSyncReport) -> None:
    report.problems += [plan.problem for plan in plans if plan.problem]
    closing = [
        UsageSegment(
            pk=plan.close.segment_id, ended_at=plan.close.ended_at, piece_count=plan.close.piece_count
        )
        for plan in plans
        if plan.close is not None
    ]
    bulk_set(UsageSegment, closing, ["ended_at", "piece_count"])
    report.closed += len(closing)
    # The n-th new segment of every instance in one insert; the next insert needs their ids, since
    # each segment names the one before it.
    waves = [(plan, plan.last_segment_id) for plan in plans if plan.opens]
    depth = 0
    written_at = timezone.now()
    while waves:
        periods = [plan.opens[depth] for plan, _ in waves]
        types = [instance_types[period.plan_id] for period in periods]
        columns = {
            "account_id": [plan.instance.account_id for plan, _ in waves],
            "instance_id": [plan.instance.id for plan, _ in waves],
            "instance_type_id": [period.plan_id for period in periods],
            "price_hourly": [instance_type.price_hourly for instance_type in types],
            "price_monthly": [instance_type.price_monthly for instance_type in types],
            "started_at": [period.start for period in periods],
            "ended_at": [period.end for period in periods],
            "piece_count": [None if p.end is None else piece_count(p.start, p.end) for p in periods],
            "previous_id": [previous for _, previous in waves],
            "job_id": [period.job_id for period in periods],
            "created": [written_at] * len(waves),
        }
        # The database checks every column (types, lengths, the CHECK and unique constraints): a
        # per-row full_clean() was most of a month's sync time at 100,000 segments.
        returned = bulk_insert(
            UsageSegment, columns, ignore_conflicts=True, returning=["id", "instance_id", "started_at"]
        )
        if not returned:  # no RETURNING from ON CONFLICT DO NOTHING here (SQLite): read them back
            returned = UsageSegment.objects.filter(instance_id__in=columns["instance_id"]).values_list(
                "pk", "instance_id", "started_at"
            )
        written = {(instance_id, started_at): pk for pk, instance_id, started_at in returned}
        following = []
        for (plan, _), period in zip(waves, periods, strict=True):
            pk = written.get((plan.instance.id, period.start))
            if pk is None:  # another sync wrote this instance's segments meanwhile
                report.raced += 1
                continue
            report.opened += 1
            if depth + 1 < len(plan.opens):
                following.append((plan, pk))
        waves, depth = following, depth + 1
