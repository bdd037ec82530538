"""Job rows: created before any task runs, enqueued when the transaction that made them commits.

A worker running a job holds a lease on it (`lease_owner`, `lease_expires_at`): taken when the job
begins, renewed after every step, by a keeper thread during every hypervisor call, and during every
wait. A second worker handed the same job (a duplicate delivery, the sweep) finds the live lease and
leaves; a lease that expired means its worker died, and the sweep (provisioning.reconcile.jobs_resume)
queues the job again. Every step converges, so the job runs again from its first step.
"""

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.tasks import async_task

from accounts.selectors import origin_of
from gpuadmin.validation import clean_for_insert
from provisioning.exceptions import InstanceBusy
from provisioning.models import Instance, Job
from telemetry.context import current_request_id

TASK = "provisioning.tasks.run_job"


class LeaseLost(Exception):
    """Another worker holds the job now (ours expired while we were stalled): stop, write nothing more."""


class JobSuperseded(Exception):
    """A delete took the instance over: stop at once and undo what this job did on the host."""


def lease_seconds() -> float:
    return float(settings.GPUADMIN_JOB_LEASE_SECONDS)


def renew_every() -> float:
    # Three renewals per lease: one missed write (a slow database) does not lose it.
    return lease_seconds() / 3


def enqueue(job: Job) -> None:
    """Hand the job to the queue once the row is committed (a task must never see a job that is not there)."""
    job_id = job.pk
    transaction.on_commit(lambda: async_task(TASK, job_id, task_name=f"job-{job_id}", group="jobs"))


def job_start(
    *,
    instance: Instance,
    action: str,
    actor: AbstractBaseUser | None,
    origin: str | None = None,
    params: dict | None = None,
    new_instance: bool = False,
) -> Job:
    """The job row, enqueued on commit. `origin` defaults to what the actor is to the instance's account.
    An instance inserted in this transaction (`new_instance`) has no job to be busy with: not asked."""
    if not new_instance and Job.objects.filter(instance=instance, status__in=Job.IN_FLIGHT).exists():
        raise InstanceBusy("Linode busy.")
    job = Job(
        instance=instance,
        account=instance.account,
        actor=actor if actor is not None and actor.is_authenticated else None,
        origin=origin or origin_of(actor=actor, account=instance.account),
        action=action,
        params=params or {},
        max_attempts=settings.GPUADMIN_JOB_MAX_ATTEMPTS,
        request_id=current_request_id(),
    )
    # One job in flight per instance: checked just above (InstanceBusy); a racing start is the
    # IntegrityError. A new job is never superseded (the other constraint).
    clean_for_insert(job)
    try:
        # No savepoint of its own: InstanceBusy leaves the caller's atomic block, which rolls back.
        with transaction.atomic(savepoint=False):
            job.save()
    except IntegrityError as exc:  # another request started a job between the check and the insert
        raise InstanceBusy("Linode busy.") from exc
    enqueue(job)
    return job


def _lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def job_begin(*, job: Job) -> bool:
    """Take the job's lease and mark it started. False when another worker holds a live lease on it, or
    it is no longer in flight (finished, failed, superseded): then this worker must leave it alone."""
    now = timezone.now()
    owner = _lease_owner()
    taken = (
        Job.objects.filter(pk=job.pk, status__in=Job.IN_FLIGHT)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(
            status=Job.Status.STARTED,
            attempts=F("attempts") + 1,
            started=Coalesce(F("started"), now),
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
        )
    )
    job.refresh_from_db(fields=["status", "attempts", "started", "lease_owner", "lease_expires_at"])
    job.lease_renewed = time.monotonic()
    return bool(taken) and job.lease_owner == owner


def job_renew(*, job: Job, **fields) -> None:
    """Extend the lease (and write `fields` with it). Raises JobSuperseded when a delete took over (the
    lease is extended still, so the delete waits for the undo) and LeaseLost when another worker holds it."""
    expires = timezone.now() + timedelta(seconds=lease_seconds())
    mine = Job.objects.filter(pk=job.pk, lease_owner=job.lease_owner)
    if mine.filter(status=Job.Status.STARTED).update(lease_expires_at=expires, **fields):
        job.lease_expires_at, job.lease_renewed = expires, time.monotonic()
        return
    if Job.objects.filter(pk=job.pk, status=Job.Status.SUPERSEDED).exists():
        # Whatever happened since, a superseded job undoes its work: its instance is being deleted.
        mine.filter(status=Job.Status.SUPERSEDED, finished__isnull=True).update(lease_expires_at=expires)
        raise JobSuperseded(f"job {job.pk} was superseded by a delete")
    raise LeaseLost(f"job {job.pk}: another worker holds its lease now")


def job_keep(*, job: Job) -> None:
    """Renew the lease if a renewal is due (cheap to call in a loop)."""
    if time.monotonic() - getattr(job, "lease_renewed", 0.0) >= renew_every():
        job_renew(job=job)


def job_hold(*, job: Job) -> None:
    """Inside a transaction, before a job's last writes: lock the instance (as a delete's acceptance does)
    and make sure the job is still this worker's and not superseded."""
    # The row's lock, not its columns: the caller has the instance (a full row cost twice the CPU).
    Instance.objects.select_for_update().filter(pk=job.instance_id).values_list("pk", flat=True).get()
    status, owner = Job.objects.filter(pk=job.pk).values_list("status", "lease_owner").get()
    if status == Job.Status.SUPERSEDED:
        raise JobSuperseded(f"job {job.pk} was superseded by a delete")
    if owner != job.lease_owner or status != Job.Status.STARTED:
        raise LeaseLost(f"job {job.pk}: another worker holds its lease now")


def job_supersede(*, job: Job, delete: Job) -> None:
    """Mark `job` superseded by `delete` (the caller holds the instance lock and inserts the delete)."""
    Job.objects.filter(pk=job.pk).update(
        superseded_by=delete,
        error=f"Superseded by {delete.action} (event {delete.pk}): the Linode was deleted before this "
        "finished; what it had done was undone.",
    )


def job_superseded_done(*, job: Job) -> None:
    """This worker's superseded job has undone its work: nothing of it runs any more."""
    Job.objects.filter(
        pk=job.pk, status=Job.Status.SUPERSEDED, finished__isnull=True, lease_owner=job.lease_owner
    ).update(finished=timezone.now(), lease_expires_at=None)


def jobs_superseded_close(*, instance_id: int) -> int:
    """Close the instance's superseded jobs that no live worker holds (never begun, or their worker died):
    the delete that superseded them has removed whatever they left on the host."""
    now = timezone.now()
    return (
        Job.objects.filter(instance_id=instance_id, status=Job.Status.SUPERSEDED, finished__isnull=True)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .update(finished=now, lease_expires_at=None)
    )


def superseded_running(*, instance_id: int) -> bool:
    """Whether a superseded job of the instance is still held by a live worker (it is undoing its work)."""
    return Job.objects.filter(
        instance_id=instance_id,
        status=Job.Status.SUPERSEDED,
        finished__isnull=True,
        lease_expires_at__gt=timezone.now(),
    ).exists()


def job_sleep(*, job: Job, seconds: float) -> None:
    """Wait `seconds` (a back-off), renewing the lease as it goes."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, renew_every(), 1.0))
        job_keep(job=job)


@contextmanager
def lease_kept(job: Job) -> Iterator[None]:
    """Renew the lease from a thread while the block runs (a hypervisor call can block for longer than
    a lease). The thread only renews; the job's own thread learns of a delete at its next renewal.

    A call that hangs keeps the lease alive until django-q's task timeout kills the worker; then the
    lease expires and the sweep runs the job again.
    """
    done = threading.Event()

    def keep() -> None:
        try:
            while not done.wait(renew_every()):
                try:
                    job_renew(job=job)
                except JobSuperseded:
                    continue  # keep the lease: the delete waits until this job has undone its work
                except LeaseLost:
                    return
        finally:
            connection.close()  # the thread's own connection

    keeper = threading.Thread(target=keep, name=f"lease job {job.pk}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join()


def job_progress(*, job: Job, step: str, percent: int) -> Job:
    """Record a finished step; renews the lease (and raises JobSuperseded or LeaseLost like job_renew).
    What the step noted in `job.params` (the steps a test-driver host simulated) is written with it."""
    percent = max(job.percent_complete, min(percent, 100))
    fields = {"params": job.params} if getattr(job, "params_changed", False) else {}
    job_renew(job=job, step=step, percent_complete=percent, **fields)
    job.params_changed = False
    job.step, job.percent_complete = step, percent
    return job


def job_finish(*, job: Job) -> Job:
    """Call it inside the transaction that took `job_hold`."""
    job.status = Job.Status.FINISHED
    job.percent_complete = 100
    job.error = ""
    job.finished = timezone.now()
    job.lease_expires_at = None
    job.save(update_fields=["status", "percent_complete", "error", "finished", "lease_expires_at"])
    return job


def job_fail(*, job: Job, error: str) -> Job:
    job.status = Job.Status.FAILED
    job.error = error
    job.finished = timezone.now()
    job.lease_expires_at = None
    job.save(update_fields=["status", "error", "finished", "lease_expires_at"])
    return job
