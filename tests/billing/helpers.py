"""Provisioning's rows as billing reads them, written with explicit times (no clock, no libvirt)."""

from datetime import UTC, datetime, timedelta

from accounts.models import Account
from inventory.models import InstanceType
from provisioning.models import Instance, Job
from tests.builders import make_instance

CREATE_TAKES = timedelta(minutes=2)


def at(text: str) -> datetime:
    """'2026-01-05 10:00' (or with seconds) in UTC."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def _job(instance: Instance, action: str, status: str, finished: datetime | None, **params) -> Job:
    job = Job.objects.create(
        instance=instance, account=instance.account, action=action, status=status, params=params
    )
    Job.objects.filter(pk=job.pk).update(finished=finished)
    job.refresh_from_db()
    return job


def created_instance(
    *,
    account: Account,
    plan: InstanceType,
    created: datetime,
    create: str = Job.Status.FINISHED,
    takes: timedelta = CREATE_TAKES,
) -> Instance:
    """An instance created at `created` whose create job ended (finished or failed) `takes` later, or
    is still running (create=Job.Status.STARTED)."""
    instance = make_instance(plan=plan, account=account)
    status = {
        Job.Status.FINISHED: Instance.Status.RUNNING,
        Job.Status.FAILED: Instance.Status.FAILED,
    }.get(create, Instance.Status.PROVISIONING)
    Instance.objects.filter(pk=instance.pk).update(created=created, status=status)
    ended = created + takes if create in (Job.Status.FINISHED, Job.Status.FAILED) else None
    _job(instance, Job.Action.CREATE, create, ended)
    instance.refresh_from_db()
    return instance


def resized(
    instance: Instance, *, to: InstanceType, finished: datetime, status: str = Job.Status.FINISHED
) -> Job:
    """A resize job that ended at `finished`; on success the instance is on the new plan."""
    job = _job(
        instance, Job.Action.RESIZE, status, finished, **{"from": instance.instance_type_id, "to": to.pk}
    )
    if status == Job.Status.FINISHED:
        Instance.objects.filter(pk=instance.pk).update(instance_type=to)
        instance.refresh_from_db()
    return job


def deleted(instance: Instance, *, when: datetime) -> Instance:
    _job(instance, Job.Action.DELETE, Job.Status.FINISHED, when)
    Instance.objects.filter(pk=instance.pk).update(deleted_at=when, status=Instance.Status.DELETED)
    instance.refresh_from_db()
    return instance
