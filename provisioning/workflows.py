"""What each job does on the hypervisor, step by step, and how it retries and rolls back.

Every step converges (define what is missing, start what should run), so a job that is run twice,
or again in a fresh worker after the first one died between two steps, ends in the same place.

A job runs under its lease (provisioning.jobs): renewed after each step, during each hypervisor call
and each wait. Its last writes happen in one transaction that first locks the instance and checks the
job is still this worker's and not superseded (`jobs.job_hold`).

Delete wins. A delete accepted while another job is in flight supersedes it. The superseded job stops
at its next renewal (or its last transaction) and removes the instance's domain and volume from every
host it touched; the delete waits while a superseded job still holds a live lease, then removes the
domain and volume itself, releases the allocation (cards to cleaning) and marks the instance deleted.
Whichever order the two run in, and if the superseded one finishes its steps after the delete, the
instance ends deleted with nothing left on a host.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q

from accounts.flags import provisioning_enabled
from accounts.models import Account
from gpuadmin.queries import PreparedRead
from hypervisor.errors import HypervisorError, TransientHypervisorError
from hypervisor.lifecycle import Outcome
from inventory.models import Host, InstanceType
from networking.services import addresses_release
from provisioning import jobs
from provisioning.claims import allocation_move, allocation_move_abandon, allocation_move_finish
from provisioning.driver import HostDriver, driver_for
from provisioning.exceptions import NoCapacity
from provisioning.gpu_hygiene import allocation_release_and_clean, gpus_enqueue_cleaning
from provisioning.models import Allocation, Instance, Job
from provisioning.services import instance_mark_deleted
from telemetry.context import log_context

logger = logging.getLogger(__name__)

Step = tuple[str, int, Callable[[], object]]

ACCOUNT_SUSPENDED_REASON = "the account is suspended"


class JobFailed(Exception):
    """The job gave up: a permanent error, or a transient one that outlived every attempt."""


# A job's reads that every run makes, compiled once per worker connection (gpuadmin.queries.PreparedRead):
# the ORM's compile was most of each one's CPU. The job comes with its instance's plan, image and account,
# not its host: a create works on its allocation's (read with it), and the join cost a fifth of this
# read's planning; a power job or a resize reads the host when it needs it.
_JOB = PreparedRead(
    lambda job_id: Job.objects.select_related(
        "instance__instance_type", "instance__image", "instance__account"
    ).filter(pk=job_id)[:1],
    job_id=int,
)
# The instance's allocation (one at most: a constraint), during a move across hosts the one it moves to.
_ALLOCATION = PreparedRead(
    lambda instance_id: (
        Allocation.objects.filter(instance_id=instance_id, released_at__isnull=True, move_source=False)
        .select_related("host", "instance_type")
        .order_by()[:1]
    ),
    instance_id=int,
)


def job_run(*, job_id: int) -> str:
    """Run a job to its end. Returns what happened, for the task result and the logs."""
    job = _JOB.first(job_id=job_id)
    if job is None:
        raise Job.DoesNotExist(f"no job {job_id}")
    # Every log line of the run names the job, its instance and the request that asked for it.
    with log_context(job_id=job.pk, instance_id=job.instance_id, request_id=job.request_id):
        outcome = _job_run(job)
        logger.info("%s", outcome)
    return outcome


def _job_run(job: Job) -> str:
    if job.status == Job.Status.SUPERSEDED:
        jobs.jobs_superseded_close(instance_id=job.instance_id)  # never begun: nothing to undo
        return f"job {job.pk} was superseded by job {job.superseded_by_id}"
    if job.status in Job.DONE:
        return f"job {job.pk} already {job.status}"
    if not provisioning_enabled():
        return f"job {job.pk} waits: provisioning is paused"
    if not jobs.job_begin(job=job):
        if job.status == Job.Status.STARTED:
            return f"job {job.pk} is held by a live lease ({job.lease_owner}): left to that worker"
        return f"job {job.pk} is {job.status}: left alone"
    logger.info("job %s %s started (attempt %s)", job.pk, job.action, job.attempts)
    handler = HANDLERS[job.action]
    try:
        handler(job)
    except JobFailed as exc:
        return f"job {job.pk} failed: {exc}"
    except jobs.JobSuperseded:
        _undo_superseded(job)
        job.refresh_from_db(fields=["superseded_by"])
        return f"job {job.pk} superseded by job {job.superseded_by_id}: undone"
    except jobs.LeaseLost as exc:
        logger.warning("%s; this worker stops", exc)
        return f"{exc}: left to it"
    return f"job {job.pk} finished"


def _active_allocation(instance: Instance) -> Allocation | None:
    """The instance's allocation: during a move across hosts, the one it moves to."""
    return _ALLOCATION.first(instance_id=instance.pk)


def _move_source(instance: Instance) -> Allocation | None:
    """The allocation a move across hosts started from, while that move is not finished."""
    return (
        instance.allocations.filter(released_at__isnull=True, move_source=True).select_related("host").first()
    )


def _record_disk_size(instance: Instance, capacity_mib: int) -> None:
    """The boot volume now has `capacity_mib` (it never shrinks, so a smaller number changes nothing)."""
    if instance.disk_mib >= capacity_mib:
        return  # recorded already (the row only grows, so it holds at least what this one read)
    Instance.objects.filter(pk=instance.pk, disk_mib__lt=capacity_mib).update(disk_mib=capacity_mib)
    instance.disk_mib = max(instance.disk_mib, capacity_mib)


def _run_steps(job: Job, steps: list[Step]) -> None:
    """Run the steps in order, starting again from the first after a transient error (each step converges)."""
    base = settings.GPUADMIN_JOB_BACKOFF_SECONDS
    attempt = 1
    while True:
        try:
            for name, percent, call in steps:
                with jobs.lease_kept(job):
                    outcome = call()
                logger.info("job %s step %s: %s", job.pk, name, outcome)
                if getattr(outcome, "outcome", outcome) == Outcome.SIMULATED:
                    _note_simulated(job, name)
                jobs.job_progress(job=job, step=name, percent=percent)
            return
        except TransientHypervisorError as exc:
            if attempt >= job.max_attempts:
                raise JobFailed(f"{exc} (gave up after {attempt} attempts)") from exc
            logger.warning("job %s attempt %s: %s; retrying", job.pk, attempt, exc)
            jobs.job_sleep(job=job, seconds=min(base * 2 ** (attempt - 1), 30.0))
            attempt += 1
            job.attempts += 1
            job.save(update_fields=["attempts"])
        except HypervisorError as exc:
            raise JobFailed(str(exc)) from exc


def _note_simulated(job: Job, step: str) -> None:
    """A step a test-driver host only pretended to do (no data to grow or copy): the job says which,
    written with the step's progress (jobs.job_progress), under the lease."""
    simulated = job.params.setdefault("simulated_steps", [])
    if step not in simulated:
        simulated.append(step)
        job.params_changed = True


def _set_status(instance: Instance, status: str, reason: str = "") -> None:
    instance.status = status
    instance.status_reason = reason
    instance.save(update_fields=["status", "status_reason", "updated"])


def _conclude(job: Job, instance: Instance, status: str) -> None:
    """The job's last writes: the instance's new status and the job finished, unless a delete took over."""
    with transaction.atomic():
        jobs.job_hold(job=job)
        _set_status(instance, status)
        jobs.job_finish(job=job)


def _release_resources(instance: Instance) -> None:
    """Give back what the instance holds: its allocations (both, if a move across hosts was under way;
    cards to cleaning) and its addresses."""
    for allocation in instance.allocations.filter(released_at__isnull=True):
        allocation_release_and_clean(allocation=allocation)
    _release_addresses(instance)


def _release_addresses(instance: Instance) -> None:
    """Its address goes into its cool-down, in the transaction that releases the allocation, so it is
    free exactly when the instance lets go; the instance no longer shows it."""
    addresses_release(instance=instance)
    if instance.ipv4:
        instance.ipv4 = []
        instance.save(update_fields=["ipv4", "updated"])


def _hosts_since(instance: Instance, since: datetime) -> list[Host]:
    """The instance's host, and every host where it held an allocation at any time since `since` (a resize
    in flight may have moved it): where a job that began then may have left a domain."""
    held = Q(allocations__instance=instance) & (
        Q(allocations__released_at__isnull=True) | Q(allocations__released_at__gte=since)
    )
    return list(Host.objects.filter(Q(pk=instance.host_id) | held).distinct().order_by("pk"))


def _undo_superseded(job: Job) -> None:
    """A delete superseded this job: remove what it may have built, from every host it touched. The
    delete removes them too; whichever runs last finds nothing left."""
    instance = Instance.objects.select_related("instance_type", "image").get(pk=job.instance_id)
    for host in _hosts_since(instance, job.started or job.created):
        try:
            with jobs.lease_kept(job):
                outcome = driver_for(host).ensure_absent(instance)
        except HypervisorError as exc:
            logger.warning("job %s, superseded: %s; the delete removes the domain", job.pk, exc)
            continue
        logger.info("job %s, superseded: domain on %s %s", job.pk, host.hostname, outcome)
    jobs.job_superseded_done(job=job)


def _bring_up_steps(
    driver: HostDriver, instance: Instance, allocation: Allocation, start: bool
) -> list[Step]:
    def volume() -> str:
        outcome = driver.ensure_volume(instance)
        _record_disk_size(instance, driver.disk(instance).capacity_mib)
        return outcome

    steps: list[Step] = [
        ("volume", 30, volume),
        # The seed before the domain that points at it; a new seed (new credentials) is a new volume.
        ("seed", 45, lambda: driver.ensure_seed(instance)),
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
    if not instance.account.active:  # read with the job, as its run began
        # Suspended while the create waited in the queue: build nothing, give back what it holds.
        _roll_back_create(job, instance, driver, ACCOUNT_SUSPENDED_REASON)
        raise JobFailed(ACCOUNT_SUSPENDED_REASON)
    try:
        _run_steps(job, _bring_up_steps(driver, instance, allocation, start=instance.booted))
    except JobFailed as exc:
        _roll_back_create(job, instance, driver, str(exc))
        raise
    _conclude(job, instance, Instance.Status.RUNNING if instance.booted else Instance.Status.OFFLINE)


def _roll_back_create(job: Job, instance: Instance, driver: HostDriver, reason: str) -> None:
    cleanup = ""
    try:
        _run_steps(job, [("remove domain", 95, lambda: driver.ensure_absent(instance))])
    except JobFailed as exc:
        cleanup = f"; removing the domain also failed ({exc}): reconcile will report it"
    with transaction.atomic():
        jobs.job_hold(job=job)
        _release_resources(instance)
        _set_status(instance, Instance.Status.FAILED, f"create failed: {reason}"[:500])
        jobs.job_fail(job=job, error=f"{reason}{cleanup}")


def _fail(
    job: Job, instance: Instance, reason: str, status: str | None = None, booted: bool | None = None
) -> None:
    with transaction.atomic():
        jobs.job_hold(job=job)
        if booted is not None:
            instance.booted = booted
            instance.save(update_fields=["booted", "updated"])
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
    _fail(job, instance, reason, _power_status(running), booted=running)


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
    _conclude(job, instance, Instance.Status.RUNNING)


def _shutdown(job: Job) -> None:
    instance = job.instance
    driver = driver_for(instance.host)
    try:
        _run_steps(job, [("shutdown", 90, lambda: driver.ensure_shut_off(instance))])
    except JobFailed as exc:
        _fail_as_observed(job, instance, driver, str(exc))
    _conclude(job, instance, Instance.Status.OFFLINE)


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
    _conclude(job, instance, Instance.Status.RUNNING)


def _delete(job: Job) -> None:
    instance = job.instance
    # A superseded job still undoing its work goes first: nothing it does may land after the delete.
    while jobs.superseded_running(instance_id=instance.pk):
        jobs.job_sleep(job=job, seconds=0.5)
    since = (
        Job.objects.filter(superseded_by=job, started__isnull=False)
        .order_by("started")
        .values_list("started", flat=True)
        .first()
        or job.created
    )
    for host in _hosts_since(instance, since):
        driver = driver_for(host)
        try:
            _run_steps(job, [("remove domain", 70, lambda driver=driver: driver.ensure_absent(instance))])
        except JobFailed as exc:
            # The allocation stays: the GPUs are not handed out while a domain may still hold them.
            _fail(
                job,
                instance,
                f"delete failed, the instance keeps its resources: {exc}",
                Instance.Status.DELETING,
            )
    with transaction.atomic():
        _account_key_share(instance)
        jobs.job_hold(job=job)
        _release_resources(instance)
        instance_mark_deleted(instance=instance)
        jobs.jobs_superseded_close(instance_id=instance.pk)
        jobs.job_finish(job=job)


def _account_key_share(instance: Instance) -> None:
    """Take now the lock on the account's row that this transaction's foreign-key checks take at commit
    (FOR KEY SHARE). Taken at commit, after the host's lock, it closed a cycle with a create that holds
    the account's lock (the limits) and waits for that host: a deadlock, and a 500 for the create. Taken
    first, the lock order is the documented one: account, then hosts. It blocks nothing but FOR UPDATE."""
    if connection.vendor != "postgresql":  # SQLite has no row locks
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {Account._meta.db_table} WHERE id = %s FOR KEY SHARE", [instance.account_id]
        )


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
        allocation = current if current.instance_type_id == new_plan.pk else _move(job, instance, new_plan)
    except NoCapacity as exc:
        _resume_old_shape(job, instance, old_driver, was_running)
        _fail(
            job,
            instance,
            f"resize to {new_plan.pk} does not fit now: {exc.detail}",
            _power_status(was_running),
        )
    source = _move_source(instance)
    if source is not None:
        _move_across_hosts(job, instance, source, allocation, was_running)
        return
    driver = driver_for(allocation.host)

    def grow() -> str:
        outcome = driver.grow_volume(instance, new_plan)
        _record_disk_size(instance, driver.disk(instance, new_plan).capacity_mib)
        return outcome

    steps: list[Step] = [("grow volume", 40, grow)]
    steps += _bring_up_steps(driver, instance, allocation, start=was_running)
    try:
        _run_steps(job, steps)
    except JobFailed as exc:
        _roll_back_resize(job, instance, old_plan, was_running, str(exc))
    _conclude(job, instance, _power_status(was_running))


def _move_across_hosts(
    job: Job, instance: Instance, source: Allocation, target: Allocation, was_running: bool
) -> None:
    """The disk goes before the instance does: copy and verify it, define the domain on the target, and
    only then remove the source. Any failure before that leaves the source as it was and the instance
    on it (allocation_move_abandon)."""
    old_driver, new_driver = driver_for(source.host), driver_for(target.host)
    new_plan = instance.instance_type
    if _same_store(source, target):
        # Only simulated hosts may share a libvirtd and a pool (a constraint on Host): nothing to copy,
        # and nothing to remove, since the source is the target.
        steps = [
            ("seed", 55, lambda: new_driver.ensure_seed(instance)),
            ("define", 60, lambda: new_driver.ensure_defined(instance, target)),
        ]
    else:
        steps = [
            ("copy volume", 40, lambda: _copy(job, instance, old_driver, new_driver)),
            # Recorded once the move is finished: until then the instance's disk is the source.
            ("grow volume", 50, lambda: new_driver.grow_volume(instance, new_plan)),
            # The seed is not copied: it is written afresh on the target, from the instance.
            ("seed", 55, lambda: new_driver.ensure_seed(instance)),
            ("define", 60, lambda: new_driver.ensure_defined(instance, target)),
        ]
    try:
        _run_steps(job, steps)
    except JobFailed as exc:
        _abandon_move(job, instance, source, target, was_running, str(exc))
    try:
        if not _same_store(source, target):
            _run_steps(
                job, [("remove source", 75, lambda: old_driver.remove_moved_source(instance, new_driver))]
            )
    except JobFailed as exc:
        # The verified copy is the instance's disk now; what is left on the old host is reported by
        # reconcile (a domain no active instance there owns), never silently kept as the truth.
        logger.warning(
            "job %s: instance %s moved, but its source on %s stays: %s", job.pk, instance.pk, source.host, exc
        )
    with transaction.atomic():
        jobs.job_hold(job=job)
        gpus_enqueue_cleaning(gpu_ids=allocation_move_finish(source=source, target=target))
        _record_disk_size(instance, new_driver.disk(instance, new_plan).capacity_mib)
    instance.refresh_from_db()
    if was_running:
        try:
            _run_steps(job, [("start", 90, lambda: new_driver.ensure_running(instance))])
        except JobFailed as exc:
            _fail_as_observed(
                job, instance, new_driver, f"resized onto {target.host}, but not started: {exc}"
            )
    _conclude(job, instance, _power_status(was_running))


def _same_store(source: Allocation, target: Allocation) -> bool:
    return (source.host.libvirt_uri, source.host.storage_pool) == (
        target.host.libvirt_uri,
        target.host.storage_pool,
    )


def _copy(job: Job, instance: Instance, old_driver: HostDriver, new_driver: HostDriver):
    report = old_driver.copy_volume_to(new_driver, instance)
    logger.info(
        "job %s: volume of instance %s %s from %s to %s (%s bytes in %s chunks, sha256 %s)",
        *(job.pk, instance.pk, report.outcome, old_driver.host, new_driver.host),
        *(report.bytes_copied, report.chunks, report.sha256),
    )
    return report


def _abandon_move(
    job: Job, instance: Instance, source: Allocation, target: Allocation, was_running: bool, reason: str
) -> None:
    old_driver, new_driver = driver_for(source.host), driver_for(target.host)
    cleanup = ""
    try:
        if not _same_store(source, target):  # never clean up a target that is the source
            # The partial copy and the target's domain; on a shared libvirtd the domain is redefined below.
            _run_steps(job, [("remove target", 80, lambda: new_driver.ensure_absent(instance))])
    except JobFailed as exc:
        cleanup = f"; the copy on {target.host} could not be removed ({exc}): reconcile will report it"
    with transaction.atomic():
        jobs.job_hold(job=job)
        gpus_enqueue_cleaning(gpu_ids=allocation_move_abandon(source=source, target=target))
    instance.refresh_from_db()
    source.move_source = False
    try:
        _run_steps(job, _bring_up_steps(old_driver, instance, source, start=was_running))
    except JobFailed as exc:
        _fail(
            job,
            instance,
            f"resize failed ({reason}) and the instance could not be brought up again on its host ({exc})"
            f"{cleanup}",
            Instance.Status.OFFLINE,
        )
    _fail(
        job,
        instance,
        f"resize failed, back on {source.instance_type_id} on its host with its disk: {reason}{cleanup}",
        _power_status(was_running),
    )


def _power_status(running: bool) -> str:
    return Instance.Status.RUNNING if running else Instance.Status.OFFLINE


def _move(job: Job, instance: Instance, plan: InstanceType, *, same_host_only: bool = False) -> Allocation:
    with transaction.atomic():
        jobs.job_hold(job=job)  # a superseded resize must not move what the delete releases
        allocation = _active_allocation(instance)
        before = set(allocation.gpus.values_list("gpu_id", flat=True))
        moved = allocation_move(allocation=allocation, plan=plan, same_host_only=same_host_only)
        if moved.host_id == allocation.host_id:
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
    """A resize on the same host failed: go back to the old plan there. Only there: the disk is there
    (a grown volume stays grown; a volume never shrinks)."""
    try:
        allocation = _move(job, instance, old_plan, same_host_only=True)
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


def _rebuild(job: Job) -> None:
    """Shut down, replace the disk with a fresh one from the new image, define, start if wanted. The
    allocation (GPUs, cores, memory, host) and the address are not touched."""
    instance = job.instance
    allocation = _active_allocation(instance)
    if allocation is None:
        _fail(job, instance, "the instance holds no allocation", Instance.Status.OFFLINE)
    driver = driver_for(allocation.host)
    try:
        _run_steps(job, [("shutdown", 20, lambda: driver.ensure_shut_off(instance))])
    except JobFailed as exc:
        _undo_rebuild(job, instance)
        _fail_as_observed(job, instance, driver, f"rebuild refused, could not shut down: {exc}")

    def remove_old_disk() -> str:
        # Once it is gone, never again: a job run twice must not wipe what the first run's guest wrote.
        if job.params.get("disk_replaced"):
            return Outcome.ALREADY
        outcome = driver.remove_volume(instance)
        job.params["disk_replaced"] = True
        job.save(update_fields=["params"])
        return outcome

    # The volume step then makes the new disk from the new image, as large as the old one was.
    steps: list[Step] = [("remove old disk", 30, remove_old_disk)]
    steps += _bring_up_steps(driver, instance, allocation, start=instance.booted)
    try:
        _run_steps(job, steps)
    except JobFailed as exc:
        if not job.params.get("disk_replaced"):
            _undo_rebuild(job, instance)
            _fail_as_observed(job, instance, driver, f"rebuild failed, the disk is as it was: {exc}")
        _fail(job, instance, f"rebuild failed after the disk was replaced: {exc}", Instance.Status.OFFLINE)
    _conclude(job, instance, _power_status(instance.booted))


def _undo_rebuild(job: Job, instance: Instance) -> None:
    """The old disk is still there: the instance keeps its old image and credentials."""
    Instance.objects.filter(pk=instance.pk).update(
        image_id=job.params.get("from_image"),
        cloud_init_user_data=job.params.get("previous_user_data", ""),
        user_data=job.params.get("previous_customer_user_data", instance.user_data),
    )
    instance.refresh_from_db()


def _password(job: Job) -> None:
    """The instance is off (the service saw to it): write the seed with the new hash, and keep it off."""
    instance = job.instance
    allocation = _active_allocation(instance)
    if allocation is None:
        _fail(job, instance, "the instance holds no allocation", Instance.Status.OFFLINE)
    driver = driver_for(allocation.host)
    steps: list[Step] = [("shutdown", 30, lambda: driver.ensure_shut_off(instance))]
    steps += _bring_up_steps(driver, instance, allocation, start=False)
    try:
        _run_steps(job, steps)
    except JobFailed as exc:
        _fail_as_observed(job, instance, driver, f"password reset failed: {exc}")
    _conclude(job, instance, Instance.Status.OFFLINE)


HANDLERS: dict[str, Callable[[Job], None]] = {
    Job.Action.CREATE: _create,
    Job.Action.BOOT: _boot,
    Job.Action.SHUTDOWN: _shutdown,
    Job.Action.REBOOT: _reboot,
    Job.Action.DELETE: _delete,
    Job.Action.RESIZE: _resize,
    Job.Action.REBUILD: _rebuild,
    Job.Action.PASSWORD: _password,
}
