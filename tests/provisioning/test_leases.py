"""Job leases: a running job's worker holds a lease and renews it; a second worker sees a live lease and
leaves; an expired lease (a dead worker) is swept and the job runs again; so is a card left cleaning."""

import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_q.models import Schedule

from inventory.models import GpuDevice
from provisioning import jobs, reconcile
from provisioning.models import Job
from provisioning.services import instance_delete
from provisioning.tasks import run_job
from tests.provisioning.helpers import active_gpus, create, domain_state

OTHER = "other-host:4242:deadbeef"


@pytest.fixture
def queued(employee, plans, region, image, gpu_host, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        instance = create(user=employee, plan=plans[1], region=region, image=image)
    return instance, instance.jobs.get()


@pytest.mark.django_db
def test_a_second_worker_sees_a_live_lease_and_leaves(queued, run_tasks):
    instance, job = queued
    live = timezone.now() + timedelta(seconds=30)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED, lease_owner=OTHER, lease_expires_at=live)
    assert "held by a live lease" in run_tasks(run_job, job.pk)
    job.refresh_from_db()
    assert (job.status, job.lease_owner, job.step, job.attempts) == (Job.Status.STARTED, OTHER, "", 0)
    assert domain_state(instance) is None  # it touched nothing


@pytest.mark.django_db
def test_an_expired_lease_is_taken_over_and_the_job_finishes_once(queued, run_tasks):
    instance, job = queued
    dead = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED, lease_owner=OTHER, lease_expires_at=dead)
    assert run_tasks(run_job, job.pk) == f"job {job.pk} finished"
    job.refresh_from_db()
    assert (job.status, job.attempts, job.lease_expires_at) == (Job.Status.FINISHED, 1, None)
    assert job.lease_owner != OTHER
    assert "already finished" in run_tasks(run_job, job.pk)
    assert domain_state(instance) == "running"


@pytest.mark.django_db
def test_renewing_a_superseded_or_taken_over_job_says_so(
    queued, employee, django_capture_on_commit_callbacks
):
    instance, job = queued
    assert jobs.job_begin(job=job)
    jobs.job_renew(job=job)
    Job.objects.filter(pk=job.pk).update(lease_owner=OTHER)
    with pytest.raises(jobs.LeaseLost):
        jobs.job_renew(job=job)
    Job.objects.filter(pk=job.pk).update(lease_owner=job.lease_owner)
    with django_capture_on_commit_callbacks():
        instance_delete(instance=instance, actor=employee)
    with pytest.raises(jobs.JobSuperseded):
        jobs.job_renew(job=job)
    job.refresh_from_db()
    assert job.lease_expires_at > timezone.now()  # kept, so the delete waits for the undo


@pytest.mark.django_db
def test_the_sweep_queues_a_job_only_once_its_lease_expired(queued, django_capture_on_commit_callbacks):
    _, job = queued
    assert jobs.job_begin(job=job)
    assert reconcile.jobs_resume() == 0
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks() as queued_tasks:
        assert reconcile.jobs_resume() == 1
    assert len(queued_tasks) == 1


@pytest.mark.django_db
def test_the_sweep_queues_the_reset_of_a_card_a_dead_worker_left_cleaning(
    employee, plans, region, image, gpu_host, run_tasks, django_capture_on_commit_callbacks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    [gpu] = active_gpus(instance)
    with django_capture_on_commit_callbacks() as delete_task:
        instance_delete(instance=instance, actor=employee)
    with django_capture_on_commit_callbacks():  # the delete runs; its reset task is lost with the worker
        delete_task[0]()
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.CLEANING
    with django_capture_on_commit_callbacks(execute=True):
        reconcile.jobs_resume()  # released a moment ago: its reset is still owed to the queued task
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.CLEANING
    later = timezone.now() + timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        reconcile.jobs_resume(now=later)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE


@pytest.mark.django_db
def test_the_sweep_is_scheduled_every_minute():
    sweep = Schedule.objects.get(func="provisioning.tasks.sweep_jobs")
    assert (sweep.schedule_type, sweep.minutes, sweep.repeats) == (Schedule.MINUTES, 1, -1)


@pytest.mark.django_db(transaction=True)
@override_settings(GPUADMIN_JOB_LEASE_SECONDS=0.6)
def test_the_lease_is_renewed_during_a_long_hypervisor_call(queued):
    _, job = queued  # committed at once here (a transactional test), so it ran: run it again
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED)
    assert jobs.job_begin(job=job)
    first = job.lease_expires_at
    with jobs.lease_kept(job):
        time.sleep(1.0)  # a call longer than the whole lease
    job.refresh_from_db()
    assert job.lease_expires_at > first + timedelta(seconds=0.5)
    assert job.lease_expires_at > timezone.now()
