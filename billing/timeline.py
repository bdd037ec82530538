"""Which plan an instance was on, and when: the periods a usage segment is made of.

A pure function of provisioning's facts (the instance's creation, its resize jobs, its deletion), so
that the usage service stays a small loop that compares this with the rows it already wrote.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ResizeFact:
    """A resize job that ended: `succeeded` when it finished, not when it failed."""

    job_id: int
    finished: datetime
    succeeded: bool
    from_plan: str
    to_plan: str


@dataclass(frozen=True)
class PlanPeriod:
    start: datetime
    end: datetime | None
    plan_id: str
    job_id: int | None


def plan_periods(
    *,
    created: datetime,
    deleted_at: datetime | None,
    current_plan: str,
    create_job_id: int | None,
    resizes: list[ResizeFact],
) -> list[PlanPeriod]:
    """Consecutive periods from `created` to `deleted_at` (open when None), one per plan held.

    A plan change takes effect when its resize job finishes. A failed resize normally leaves the old
    plan, but when its rollback failed too the instance stays on the new plan; that shows in the next
    resize's `from` or, for the last resize, in the instance's current plan, and is billed as a change
    at the failed job's end. Periods of no length are dropped: they would bill nothing.
    """
    resizes = sorted(resizes, key=lambda fact: (fact.finished, fact.job_id))
    plan = resizes[0].from_plan if resizes else current_plan
    start, job_id = created, create_job_id
    periods: list[PlanPeriod] = []
    for position, fact in enumerate(resizes):
        if fact.succeeded:
            after = fact.to_plan
        else:
            known_next = resizes[position + 1].from_plan if position + 1 < len(resizes) else current_plan
            after = fact.to_plan if known_next == fact.to_plan else plan
        if after == plan:
            continue
        at = max(fact.finished, start)
        if deleted_at is not None:
            at = min(at, deleted_at)
        periods.append(PlanPeriod(start, at, plan, job_id))
        start, plan, job_id = at, after, fact.job_id
    periods.append(PlanPeriod(start, deleted_at, plan, job_id))
    return [p for p in periods if p.end is None or p.end > p.start]


def as_of(periods: list[PlanPeriod], now: datetime) -> list[PlanPeriod]:
    """The periods as they stood at `now`: what had not begun is absent, what had not ended is open."""
    seen = []
    for period in periods:
        if period.start > now:
            break
        if period.end is not None and period.end > now:
            period = PlanPeriod(period.start, None, period.plan_id, period.job_id)
        seen.append(period)
    return seen
