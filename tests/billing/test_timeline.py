"""Plan periods from provisioning's facts: create, resizes (finished or failed), delete."""

from billing.timeline import PlanPeriod, ResizeFact, as_of, plan_periods
from tests.billing.helpers import at

CREATED = at("2026-01-10 08:00")


def periods(*resizes, deleted_at=None, current="g1-gpu-rtx6000-2"):
    return plan_periods(
        created=CREATED, deleted_at=deleted_at, current_plan=current, create_job_id=1, resizes=list(resizes)
    )


def test_no_resize_is_one_period_open_until_deleted():
    assert periods(current="a") == [PlanPeriod(CREATED, None, "a", 1)]
    gone = at("2026-01-11 00:00")
    assert periods(current="a", deleted_at=gone) == [PlanPeriod(CREATED, gone, "a", 1)]


def test_a_finished_resize_starts_a_new_period_when_its_job_finishes():
    done = at("2026-01-12 09:30")
    got = periods(ResizeFact(5, done, True, "a", "b"), current="b")
    assert got == [PlanPeriod(CREATED, done, "a", 1), PlanPeriod(done, None, "b", 5)]


def test_a_failed_resize_that_rolled_back_changes_nothing():
    got = periods(ResizeFact(5, at("2026-01-12 09:30"), False, "a", "b"), current="a")
    assert got == [PlanPeriod(CREATED, None, "a", 1)]


def test_a_failed_resize_whose_rollback_failed_leaves_the_new_plan_and_bills_it():
    failed = at("2026-01-12 09:30")
    got = periods(ResizeFact(5, failed, False, "a", "b"), current="b")
    assert got == [PlanPeriod(CREATED, failed, "a", 1), PlanPeriod(failed, None, "b", 5)]
    # Known from the next resize's `from` when it is not the last one.
    later = at("2026-01-13 00:00")
    got = periods(ResizeFact(5, failed, False, "a", "b"), ResizeFact(6, later, True, "b", "c"), current="c")
    assert [p.plan_id for p in got] == ["a", "b", "c"]


def test_as_of_cuts_what_had_not_happened():
    done = at("2026-01-12 09:30")
    full = periods(ResizeFact(5, done, True, "a", "b"), deleted_at=at("2026-01-20 00:00"), current="b")
    assert as_of(full, at("2026-01-11 00:00")) == [PlanPeriod(CREATED, None, "a", 1)]
    assert as_of(full, at("2026-01-15 00:00")) == [full[0], PlanPeriod(done, None, "b", 5)]
    assert as_of(full, at("2026-02-01 00:00")) == full
