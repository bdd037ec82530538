"""What each job does on the hypervisor, step by step, and how it retries and rolls back.

Every step converges (define what is missing, start what should run), so a job that is run twice,
or again in a fresh worker after the first one died between two steps, ends in the same place.
"""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from accounts.flags import provisioning_enabled
from hypervisor.errors import HypervisorError, TransientHypervisorError
from inventory.models import InstanceType
from provisioning import jobs
from provisioning.claims import allocation_move
from provisioning.driver import HostDriver, driver_for
from provisioning.exceptions import NoCapacity
from provisioning.gpu_hygiene import allocation_release_and_clean, gpus_enqueue_cleaning
from provisioning.models import Allocation, Instance, Job
from provisioning.services import instance_mark_deleted

logger = logging.getLogger(__name__)

Step = tuple[str, int, Callable[[], object]]


class JobFailed(Exception):
    """The job gave up: a permanent error, or a transient one that outlived every attempt."""


def job_run(*, job_id: int) -> str:
    """Run a job to its end. Returns what happened, for the task result and the logs."""
    job = Job.objects.select_related("instance__host", "instance__instance_type", "instance__image").get(
        pk=job_id
    )
    if job.status in (Job.Status.FINISHED, Job.Status.FAILED):
        return f"job {job.pk} already {job.status}"
    if not provisioning_enabled():
        return f"job {job.pk} waits: provisioning is paused"
    jobs.job_begin(job=job)
    handler = HANDLERS[job.action]
    try:
        handler(job)
    except JobFailed as exc:
        return f"job {job.pk} failed: {exc}"
    jobs.job_finish(job=job)
    return f"job {job.pk} finished"


def _active_allocation(instance: Instance) -> Allocation | None:
    return instance.allocations.filter(released_at__isnull=True).select_related("host").first()


def _run_steps(job: Job, steps: list[Step]) -> None:
    """Run the steps in order, starting again from the first after a transient error (each step converges)."""
    base = settings.GPUADMIN_JOB_BACKOFF_SECONDS
    attempt = 1
    while True:
        try:
            for name, percent, call in steps:
                outcome = call()
                logger.info("job %s step %s: %s", job.pk, name, outcome)
                jobs.job_progress(job=job, step=name, percent=percent)
            return
        except TransientHypervisorError as exc:
            if attempt >= job.max_attempts:
                raise JobFailed(f"{exc} (gave up after {attempt} attempts)") from exc
            logger.warning("job %s attempt %s: %s; retrying", job.pk, attempt, exc)
            time.sleep(min(base * 2 ** (attempt - 1), 30.0))
            attempt += 1
            job.attempts += 1
            job.save(update_fields=["attempts"])
        except HypervisorError as exc:
            raise JobFailed(str(exc)) from exc


def _set_status(instance: Instance, status: str, reason: str = "") -> None:
    instance.status = status
    instance.status_reason = reason
    instance.save(update_fields=["status", "status_reason", "updated"])


def _bring_up_steps(
    driver: HostDriver, instance: Instance, allocation: Allocation, start: bool
) -> list[Step]:
    steps: list[Step] = [
        ("volume", 30, lambda: driver.ensure_volume(instance)),
        ("define", 60, lambda: driver.ensure_defined(instance, allocation)),
    ]
    if start:
        steps.append(("start", 90, lambda: driver.ensure_running(instance)))
    return steps


def _create(job: Job) -> None:
    instance = job.instance
    allocation = _active_allocation(instance)
    if allocation is None:
        _fail(
            job, instance, "its allocation was released before the domain was built", Instance.Status.FAILED
        )
    driver = driver_for(allocation.host)
    try:
        _run_steps(job, _bring_up_steps(driver, instance, allocation, start=instance.booted))
    except JobFailed as exc:
        _roll_back_create(job, instance, driver, str(exc))
        raise
    _set_status(instance, Instance.Status.RUNNING if instance.booted else Instance.Status.OFFLINE)


def _roll_back_create(job: Job, instance: Instance, driver: HostDriver, reason: str) -> None:
    cleanup = ""
    try:
        _run_steps(job, [("remove domain", 95, lambda: driver.ensure_absent(instance))])
    except JobFailed as exc:
        cleanup = f"; removing the domain also failed ({exc}): reconcile will report it"
    with transaction.atomic():
        allocation = _active_allocation(instance)
        if allocation is not None:
            allocation_release_and_clean(allocation=allocation)
        _set_status(instance, Instance.Status.FAILED, f"create failed: {reason}"[:500])
        jobs.job_fail(job=job, error=f"{reason}{cleanup}")


def _fail(job: Job, instance: Instance, reason: str, status: str | None = None) -> None:
    with transaction.atomic():
        if status is not None:
            _set_status(instance, status, reason[:500])
        jobs.job_fail(job=job, error=reason)
    raise JobFailed(reason)


def _fail_as_observed(job: Job, instance: Instance, driver: HostDriver, reason: str) -> None:
    """A failed power job leaves the instance in whatever state the host shows, and wanting that state."""
    try:
        running = driver.domain_state(instance) in ("running", "blocked", "paused")
    except HypervisorError:
        running = False
    instance.booted = running
    instance.save(update_fields=["booted", "updated"])
    _fail(job, instance, reason, _power_status(running))


def _boot(job: Job) -> None:
    instance = job.instance
    allocation = _active_allocation(instance)
    if allocation is None:
        _fail(job, instance, "the instance holds no allocation", Instance.Status.OFFLINE)
    driver = driver_for(allocation.host)
    try:
        _run_steps(job, _bring_up_steps(driver, instance, allocation, start=True))
    except JobFailed as exc:
        _fail_as_observed(job, instance, driver, str(exc))
    _set_status(instance, Instance.Status.RUNNING)


def _shutdown(job: Job) -> None:
    instance = job.instance
    driver = driver_for(instance.host)
    try:
        _run_steps(job, [("shutdown", 90, lambda: driver.ensure_shut_off(instance))])
    except JobFailed as exc:
        _fail_as_observed(job, instance, driver, str(exc))
    _set_status(instance, Instance.Status.OFFLINE)


def _reboot(job: Job) -> None:
    instance = job.instance
    allocation = _active_allocation(instance)
    if allocation is None:
        _fail(job, instance, "the instance holds no allocation", Instance.Status.OFFLINE)
    driver = driver_for(allocation.host)
    steps = [("shutdown", 40, lambda: driver.ensure_shut_off(instance))]
    steps += _bring_up_steps(driver, instance, allocation, start=True)
    try:
        _run_steps(job, steps)
    except JobFailed as exc:
        _fail_as_observed(job, instance, driver, str(exc))
    _set_status(instance, Instance.Status.RUNNING)


def _delete(job: Job) -> None:
    instance = job.instance
    if instance.host_id is not None:
        driver = driver_for(instance.host)
        try:
            _run_steps(job, [("remove domain", 70, lambda: driver.ensure_absent(instance))])
        except JobFailed as exc:
            # The allocation stays: the GPUs are not handed out while a domain may still hold them.
            _fail(
                job,
                instance,
                f"delete failed, the instance keeps its resources: {exc}",
                Instance.Status.DELETING,
            )
    with transaction.atomic():
        allocation = _active_allocation(instance)
        if allocation is not None:
            allocation_release_and_clean(allocation=allocation)
        instance_mark_deleted(instance=instance)


def _resize(job: Job) -> None:
    instance = job.instance
    old_plan = InstanceType.objects.get(pk=job.params["from"])
    new_plan = InstanceType.objects.get(pk=job.params["to"])
    was_running = job.params.get("was_running", instance.booted)
    old_host = instance.host
    old_driver = driver_for(old_host)
    try:
        _run_steps(job, [("shutdown", 20, lambda: old_driver.ensure_shut_off(instance))])
    except JobFailed as exc:
        _fail_as_observed(job, instance, old_driver, f"resize refused, could not shut down: {exc}")
    current = _active_allocation(instance)
    try:
        # A replayed resize finds the move already made: moving again would only churn the allocation.
        allocation = current if current.instance_type_id == new_plan.pk else _move(instance, new_plan)
    except NoCapacity as exc:
        _resume_old_shape(job, instance, old_driver, was_running)
        _fail(
            job,
            instance,
            f"resize to {new_plan.pk} does not fit now: {exc.detail}",
            _power_status(was_running),
        )
    new_driver = driver_for(allocation.host)
    steps: list[Step] = []
    if allocation.host_id != old_host.pk:
        steps.append(("remove old domain", 40, lambda: old_driver.ensure_absent(instance)))
    steps += _bring_up_steps(new_driver, instance, allocation, start=was_running)
    try:
        _run_steps(job, steps)
    except JobFailed as exc:
        _roll_back_resize(job, instance, old_plan, was_running, str(exc))
    _set_status(instance, _power_status(was_running))


def _power_status(running: bool) -> str:
    return Instance.Status.RUNNING if running else Instance.Status.OFFLINE


def _move(instance: Instance, plan: InstanceType) -> Allocation:
    with transaction.atomic():
        allocation = _active_allocation(instance)
        before = set(allocation.gpus.values_list("gpu_id", flat=True))
        moved = allocation_move(allocation=allocation, plan=plan)
        after = set(moved.gpus.values_list("gpu_id", flat=True))
        gpus_enqueue_cleaning(gpu_ids=sorted(before - after))
        instance.refresh_from_db()
        instance.instance_type = plan
        instance.save(update_fields=["instance_type", "updated"])
    return moved


def _resume_old_shape(job: Job, instance: Instance, driver: HostDriver, was_running: bool) -> None:
    if was_running:
        allocation = _active_allocation(instance)
        try:
            _run_steps(job, _bring_up_steps(driver, instance, allocation, start=True))
        except JobFailed:
            logger.exception("job %s: could not restart instance %s in its old shape", job.pk, instance.pk)


def _roll_back_resize(
    job: Job, instance: Instance, old_plan: InstanceType, was_running: bool, reason: str
) -> None:
    try:
        allocation = _move(instance, old_plan)
        driver = driver_for(allocation.host)
        _run_steps(job, _bring_up_steps(driver, instance, allocation, start=was_running))
    except (NoCapacity, JobFailed) as exc:
        _fail(
            job,
            instance,
            f"resize failed ({reason}) and the old shape could not be restored ({exc})",
            Instance.Status.OFFLINE,
        )
    _fail(job, instance, f"resize failed, back on {old_plan.pk}: {reason}", _power_status(was_running))


HANDLERS: dict[str, Callable[[Job], None]] = {
    Job.Action.CREATE: _create,
    Job.Action.BOOT: _boot,
    Job.Action.SHUTDOWN: _shutdown,
    Job.Action.REBOOT: _reboot,
    Job.Action.DELETE: _delete,
    Job.Action.RESIZE: _resize,
}
