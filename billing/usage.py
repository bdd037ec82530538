"""What a usage sync would write for one instance, as a pure function of provisioning's facts.

`sync_plan` compares the plan periods an instance had (billing.timeline) with the usage segments
already written, and says what a sync should do: close the open segment, open the next ones, or
report a contradiction. `usage_sync` writes that plan; the account's balances rate it in memory
(GET /v4/account writes nothing), so both always agree on what an instance has used.
"""

from dataclasses import dataclass, field
from datetime import datetime

from billing.rating import piece_count
from billing.timeline import PlanPeriod, ResizeFact, as_of, plan_periods
from provisioning.models import Instance, Job

CREATE, RESIZE = Job.Action.CREATE, Job.Action.RESIZE
FINISHED, FAILED = Job.Status.FINISHED, Job.Status.FAILED


@dataclass(frozen=True)
class JobFact:
    id: int
    action: str
    status: str
    finished: datetime | None
    params: dict


@dataclass(frozen=True)
class SegmentFact:
    id: int
    instance_type_id: str
    started_at: datetime
    ended_at: datetime | None


@dataclass
class InstanceFacts:
    """An instance's row, its create and resize jobs (oldest first) and its segments (oldest first)."""

    id: int
    account_id: int
    created: datetime
    deleted_at: datetime | None
    status: str
    instance_type_id: str
    jobs: list[JobFact] = field(default_factory=list)
    segments: list[SegmentFact] = field(default_factory=list)


@dataclass(frozen=True)
class SegmentClose:
    segment_id: int
    ended_at: datetime
    piece_count: int


@dataclass
class SyncPlan:
    """Writes for one instance, in order: close the open segment, then open `opens`, each the
    successor of the one before (the first one follows the instance's last segment)."""

    instance: InstanceFacts
    close: SegmentClose | None = None
    opens: list[PlanPeriod] = field(default_factory=list)
    problem: str | None = None

    @property
    def last_segment_id(self) -> int | None:
        return self.instance.segments[-1].id if self.instance.segments else None

    @property
    def empty(self) -> bool:
        return self.close is None and not self.opens


def periods_of(instance: InstanceFacts, now: datetime) -> list[PlanPeriod] | None:
    """The plan periods of an instance as of `now`, or None when it is not billable (yet)."""
    creates = [job for job in instance.jobs if job.action == CREATE]
    succeeded = [job for job in creates if job.status == FINISHED and job.finished and job.finished <= now]
    # A create that failed (or has not finished) is not billed; its instance had no usable machine.
    if (creates and not succeeded) or instance.status == Instance.Status.FAILED:
        return None
    resizes = [
        ResizeFact(
            job_id=job.id,
            finished=job.finished,
            succeeded=job.status == FINISHED,
            from_plan=job.params["from"],
            to_plan=job.params["to"],
        )
        for job in instance.jobs
        if job.action == RESIZE and job.finished is not None and job.status in (FINISHED, FAILED)
    ]
    periods = plan_periods(
        created=instance.created,
        deleted_at=instance.deleted_at,
        current_plan=instance.instance_type_id,
        create_job_id=succeeded[0].id if succeeded else None,
        resizes=resizes,
    )
    return as_of(periods, now)


def sync_plan(instance: InstanceFacts, now: datetime) -> SyncPlan:
    """What a sync as of `now` writes for this instance. Segments are only appended and closed: when
    provisioning contradicts a segment already written, the plan stops there and says why."""
    plan = SyncPlan(instance)
    periods = periods_of(instance, now)
    if periods is None:
        return plan
    segments = instance.segments
    for position, want in enumerate(periods):
        if position >= len(segments):
            plan.opens.append(want)
            continue
        have = segments[position]
        if (have.started_at, have.instance_type_id) != (want.start, want.plan_id):
            plan.problem = (
                f"instance {instance.id}: segment {have.id} says {have.instance_type_id} from "
                f"{have.started_at:%Y-%m-%d %H:%M:%S}, provisioning says {want.plan_id} from "
                f"{want.start:%Y-%m-%d %H:%M:%S}; left as it is"
            )
            return plan
        if have.ended_at == want.end:
            continue
        if have.ended_at is None:
            plan.close = SegmentClose(have.id, want.end, piece_count(have.started_at, want.end))
        elif want.end is None and position == len(periods) - 1:
            return plan  # the rows were written by a sync that looked later than `now`
        else:
            plan.problem = (
                f"instance {instance.id}: segment {have.id} ended {have.ended_at:%Y-%m-%d %H:%M:%S}, "
                f"provisioning now says {want.end}; left as it is"
            )
            return plan
    if len(segments) > len(periods) and periods and periods[-1].end is not None:
        plan.problem = (
            f"instance {instance.id}: {len(segments)} segments but provisioning explains {len(periods)}"
        )
    return plan
