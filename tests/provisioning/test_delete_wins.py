"""Delete wins: a delete is accepted in any state and supersedes the job in flight; whichever order a
worker sees the two jobs in, the instance ends deleted, nothing is left on the host and nothing leaks.

The jobs are run by hand, in each order, in this process (the test driver's state is per process, so
the domain and volume the assertions look at are the ones the jobs built).
"""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from hypervisor.connection import connect
from inventory.models import GpuDevice
from provisioning import jobs
from provisioning.api.selectors import events_of
from provisioning.domain_spec import disk_spec_for
from provisioning.models import Instance, Job
from provisioning.services import (
    instance_boot,
    instance_delete,
    instance_reboot,
    instance_resize,
    instance_shutdown,
)
from provisioning.tasks import run_job
from tests.provisioning.helpers import active_gpus, create, domain_state, nothing_leaked

pytestmark = pytest.mark.django_db


def volume_exists(instance: Instance) -> bool:
    instance.refresh_from_db()
    disk = disk_spec_for(instance=instance, plan=instance.instance_type)
    pool = connect(instance.host.libvirt_uri).storagePoolLookupByName(disk.pool)
    return disk.volume in pool.listVolumes()


@pytest.fixture
def held(employee, plans, region, image, gpu_host, django_capture_on_commit_callbacks):
    """A create whose task has not run yet (queued), as right after POST /linode/instances."""

    def make(plan=None):
        with django_capture_on_commit_callbacks():
            instance = create(user=employee, plan=plan or plans[1], region=region, image=image)
        return instance, instance.jobs.get()

    return make


@pytest.fixture
def accept_delete(employee, django_capture_on_commit_callbacks):
    """DELETE accepted, its task held back for the test to run."""

    def accept(instance: Instance) -> Job:
        with django_capture_on_commit_callbacks():
            return instance_delete(instance=instance, actor=employee)

    return accept


def assert_deleted_and_clean(instance: Instance, gpus: list[GpuDevice]) -> None:
    instance.refresh_from_db()
    assert instance.status == Instance.Status.DELETED and instance.deleted_at is not None
    assert domain_state(instance) is None and not volume_exists(instance)
    assert nothing_leaked(instance)
    assert set(GpuDevice.objects.filter(pk__in=[g.pk for g in gpus]).values_list("state", flat=True)) == {
        GpuDevice.State.AVAILABLE
    }
    assert not instance.jobs.filter(status__in=Job.IN_FLIGHT).exists()
    assert not instance.jobs.filter(status=Job.Status.SUPERSEDED, finished__isnull=True).exists()


def test_a_delete_right_after_a_create_is_accepted_and_supersedes_it(held, accept_delete, employee, plans):
    instance, create_job = held()
    delete = accept_delete(instance)
    create_job.refresh_from_db()
    assert (create_job.status, create_job.superseded_by_id) == (Job.Status.SUPERSEDED, delete.pk)
    assert delete.status == Job.Status.SCHEDULED
    instance.refresh_from_db()
    assert instance.status == Instance.Status.DELETING and instance.deleted_at is not None
    # A second delete is the same delete; the label is free at once.
    assert accept_delete(instance).pk == delete.pk
    same_label = create(
        user=employee, plan=plans[1], region=instance.region, image=instance.image, label=instance.label
    )
    assert same_label.label == instance.label and same_label.pk != instance.pk


def test_delete_first_then_the_superseded_create(held, accept_delete, run_tasks):
    instance, create_job = held()
    gpus = active_gpus(instance)
    delete = accept_delete(instance)
    run_tasks(run_job, delete.pk)
    assert "was superseded by job" in run_tasks(run_job, create_job.pk)
    create_job.refresh_from_db()
    delete.refresh_from_db()
    assert delete.status == Job.Status.FINISHED
    assert create_job.status == Job.Status.SUPERSEDED and create_job.finished is not None
    assert create_job.attempts == 0  # it never touched the host
    assert_deleted_and_clean(instance, gpus)


def test_the_create_first_sees_the_delete_at_its_next_step_and_undoes_itself(
    held, accept_delete, run_tasks, monkeypatch
):
    instance, create_job = held()
    gpus = active_gpus(instance)
    accepted = {}
    real_progress = jobs.job_progress

    def delete_after_volume(*, job, step, percent):
        if job.pk == create_job.pk and step == "volume" and not accepted:
            accepted["delete"] = accept_delete(instance)  # DELETE arrives while the create runs
        return real_progress(job=job, step=step, percent=percent)

    monkeypatch.setattr(jobs, "job_progress", delete_after_volume)
    outcome = run_tasks(run_job, create_job.pk)
    assert "superseded" in outcome and "undone" in outcome
    create_job.refresh_from_db()
    assert (create_job.status, create_job.step) == (Job.Status.SUPERSEDED, "")  # stopped before define
    assert create_job.finished is not None and create_job.lease_expires_at is None
    assert domain_state(instance) is None and not volume_exists(instance)  # its volume was undone
    run_tasks(run_job, accepted["delete"].pk)
    assert_deleted_and_clean(instance, gpus)


@pytest.mark.parametrize("last_step", ["define", "start"])
def test_a_create_that_finishes_after_the_delete_undoes_itself(
    held, accept_delete, run_tasks, monkeypatch, last_step
):
    """The create's worker stalls after a step; it is taken for dead, the delete runs to its end, then the
    stalled worker carries on: it must not leave a domain (or a running guest) behind."""
    instance, create_job = held()
    gpus = active_gpus(instance)
    real_progress = jobs.job_progress
    stalled = {}

    def stall(*, job, step, percent):
        real_progress(job=job, step=step, percent=percent)
        if job.pk == create_job.pk and step == last_step and not stalled:
            stalled["delete"] = delete = accept_delete(instance)
            Job.objects.filter(pk=create_job.pk).update(
                lease_expires_at=timezone.now() - timedelta(seconds=1)
            )
            run_tasks(run_job, delete.pk)  # the delete does not wait for a dead worker
            delete.refresh_from_db()
            assert delete.status == Job.Status.FINISHED
            instance.refresh_from_db()
            assert instance.status == Instance.Status.DELETED

    monkeypatch.setattr(jobs, "job_progress", stall)
    # The superseded job's renewal fails now, whatever the step: it stops and undoes.
    assert "undone" in run_tasks(run_job, create_job.pk)
    create_job.refresh_from_db()
    assert create_job.status == Job.Status.SUPERSEDED
    assert_deleted_and_clean(instance, gpus)


def test_the_delete_waits_for_a_superseded_job_that_a_live_worker_still_holds(held, accept_delete, run_tasks):
    instance, create_job = held()
    delete = accept_delete(instance)
    Job.objects.filter(pk=create_job.pk).update(
        lease_owner="another-worker:1:x", lease_expires_at=timezone.now() + timedelta(seconds=1.5)
    )
    started = timezone.now()
    run_tasks(run_job, delete.pk)
    assert (timezone.now() - started).total_seconds() >= 1.0
    delete.refresh_from_db()
    create_job.refresh_from_db()
    assert delete.status == Job.Status.FINISHED and create_job.finished is not None


@pytest.mark.parametrize("action", ["boot", "shutdown", "reboot", "resize"])
def test_a_delete_supersedes_any_job_in_flight(
    action, employee, plans, region, image, gpu_host, run_tasks, accept_delete, monkeypatch,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    if action == "boot":
        run_tasks(instance_shutdown, instance=instance, actor=employee)
    gpus = active_gpus(instance)
    calls = {
        "boot": lambda: instance_boot(instance=instance, actor=employee),
        "shutdown": lambda: instance_shutdown(instance=instance, actor=employee),
        "reboot": lambda: instance_reboot(instance=instance, actor=employee),
        "resize": lambda: instance_resize(instance=instance, actor=employee, plan=plans[2]),
    }
    with django_capture_on_commit_callbacks():
        job = calls[action]()
    real_progress = jobs.job_progress
    accepted = {}

    def delete_at_first_step(*, job, step, percent):
        if not accepted:
            accepted["delete"] = accept_delete(instance)
        return real_progress(job=job, step=step, percent=percent)

    monkeypatch.setattr(jobs, "job_progress", delete_at_first_step)
    assert "undone" in run_tasks(run_job, job.pk)
    monkeypatch.setattr(jobs, "job_progress", real_progress)
    run_tasks(run_job, accepted["delete"].pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUPERSEDED
    instance.refresh_from_db()
    assert instance.instance_type == plans[1]  # a superseded resize moved nothing
    assert_deleted_and_clean(instance, gpus)


def test_events_say_the_create_was_superseded(held, accept_delete, run_tasks):
    instance, create_job = held()
    delete = accept_delete(instance)
    run_tasks(run_job, delete.pk)
    run_tasks(run_job, create_job.pk)
    events = {e.pk: e for e in events_of(account=instance.account)}
    assert events[create_job.pk].event_status == "failed"
    assert events[create_job.pk].error.startswith(f"Superseded by linode_delete (event {delete.pk})")
    assert events[delete.pk].event_status == "finished"
    assert [e.pk for e in events_of(account=instance.account).filter(event_status="failed")] == [
        create_job.pk
    ]


def test_the_database_still_allows_one_job_in_flight_and_only_superseded_jobs_name_a_delete(held):
    instance, create_job = held()
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.create(instance=instance, account=instance.account, action=Job.Action.DELETE)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=create_job.pk).update(superseded_by=create_job)
    with pytest.raises(IntegrityError), transaction.atomic():
        Job.objects.filter(pk=create_job.pk).update(lease_expires_at=timezone.now())  # scheduled: no lease
