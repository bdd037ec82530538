"""Job rows: created before any task runs, enqueued when the transaction that made them commits."""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from accounts.selectors import origin_of
from provisioning.exceptions import InstanceBusy
from provisioning.models import Instance, Job
from telemetry.context import current_request_id

TASK = "provisioning.tasks.run_job"


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
) -> Job:
    """The job row, enqueued on commit. `origin` defaults to what the actor is to the instance's account."""
    if Job.objects.filter(instance=instance, status__in=Job.IN_FLIGHT).exists():
        raise InstanceBusy("Linode busy.")
    job = Job(
        instance=instance,
        account_id=instance.account_id,
        actor=actor if actor is not None and actor.is_authenticated else None,
        origin=origin or origin_of(actor=actor, account=instance.account),
        action=action,
        params=params or {},
        max_attempts=settings.GPUADMIN_JOB_MAX_ATTEMPTS,
        request_id=current_request_id(),
    )
    job.full_clean()
    try:
        with transaction.atomic():
            job.save()
    except IntegrityError as exc:  # another request started a job between the check and the insert
        raise InstanceBusy("Linode busy.") from exc
    enqueue(job)
    return job


def job_begin(*, job: Job) -> Job:
    job.status = Job.Status.STARTED
    job.attempts += 1
    job.started = job.started or timezone.now()
    job.save(update_fields=["status", "attempts", "started"])
    return job


def job_progress(*, job: Job, step: str, percent: int) -> Job:
    job.step = step
    job.percent_complete = max(job.percent_complete, min(percent, 100))
    job.save(update_fields=["step", "percent_complete"])
    return job


def job_finish(*, job: Job) -> Job:
    job.status = Job.Status.FINISHED
    job.percent_complete = 100
    job.error = ""
    job.finished = timezone.now()
    job.save(update_fields=["status", "percent_complete", "error", "finished"])
    return job


def job_fail(*, job: Job, error: str) -> Job:
    job.status = Job.Status.FAILED
    job.error = error
    job.finished = timezone.now()
    job.save(update_fields=["status", "error", "finished"])
    return job
