"""Fault injection at every step of every task: each run ends done after retries, or rolled back clean."""

import pytest
from django.test import override_settings

from hypervisor import faults
from hypervisor.faults import Step
from inventory.models import GpuDevice
from provisioning import reconcile
from provisioning.models import Instance, Job
from provisioning.services import (
    instance_boot,
    instance_delete,
    instance_reboot,
    instance_resize,
    instance_shutdown,
)
from provisioning.tasks import run_job
from tests.provisioning.helpers import active_gpus, create, domain_state, last_job, nothing_leaked

pytestmark = pytest.mark.django_db
MAX_ATTEMPTS = 4


@pytest.fixture(autouse=True)
def _few_attempts(settings):
    settings.GPUADMIN_JOB_MAX_ATTEMPTS = MAX_ATTEMPTS


def gpu_states(instance_gpus):
    return set(GpuDevice.objects.filter(pk__in=[g.pk for g in instance_gpus]).values_list("state", flat=True))


@pytest.mark.parametrize("step", [Step.VOLUME, Step.DEFINE, Step.START])
def test_transient_create_faults_are_retried_until_done(
    step, gpu_host, employee, plans, region, image, run_tasks
):
    fault = faults.inject(step, uri=gpu_host.libvirt_uri, times=MAX_ATTEMPTS - 1)
    instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
    instance.refresh_from_db()
    job = last_job(instance)
    assert fault.fired == MAX_ATTEMPTS - 1
    assert (job.status, instance.status, domain_state(instance)) == (
        Job.Status.FINISHED,
        "running",
        "running",
    )
    assert job.attempts == MAX_ATTEMPTS


@pytest.mark.parametrize("permanent", [True, False], ids=["permanent", "transient-exhausted"])
@pytest.mark.parametrize("step", [Step.VOLUME, Step.DEFINE, Step.START])
def test_failed_create_rolls_back_everything(
    step, permanent, gpu_host, employee, plans, region, image, run_tasks
):
    faults.inject(step, uri=gpu_host.libvirt_uri, permanent=permanent, times=None)
    instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
    instance.refresh_from_db()
    job = last_job(instance)
    assert job.status == Job.Status.FAILED
    assert f"{step} failed" in job.error
    assert instance.status == Instance.Status.FAILED and "create failed" in instance.status_reason
    assert domain_state(instance) is None  # no orphaned domain
    assert nothing_leaked(instance)
    assert GpuDevice.objects.filter(state=GpuDevice.State.AVAILABLE, host=gpu_host).count() == 4


def test_rollback_that_cannot_remove_the_domain_still_frees_nothing_twice_and_says_so(
    gpu_host, employee, plans, region, image, run_tasks
):
    faults.inject(Step.START, uri=gpu_host.libvirt_uri, permanent=True, times=None)
    faults.inject(Step.UNDEFINE, uri=gpu_host.libvirt_uri, permanent=True, times=None)
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    job = last_job(instance)
    assert job.status == Job.Status.FAILED and "reconcile will report it" in job.error
    assert domain_state(instance) == "shut off"  # left defined: reconcile reports it, never destroys it
    faults.clear()
    report = reconcile.reconcile_host(host=gpu_host)
    assert any(f"instance {instance.pk}" in line and "left untouched" in line for line in report.problems)
    assert domain_state(instance) == "shut off"


def test_shutdown_fault_transient_then_permanent(gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    with faults.injected(Step.SHUTDOWN, uri=gpu_host.libvirt_uri, times=2):
        job = run_tasks(instance_shutdown, instance=instance, actor=employee)
    job.refresh_from_db()
    instance.refresh_from_db()
    assert (job.status, instance.status, domain_state(instance)) == ("finished", "offline", "shut off")

    run_tasks(instance_boot, instance=instance, actor=employee)
    with faults.injected(Step.SHUTDOWN, uri=gpu_host.libvirt_uri, permanent=True, times=None):
        job = run_tasks(instance_shutdown, instance=instance, actor=employee)
    job.refresh_from_db()
    instance.refresh_from_db()
    assert job.status == Job.Status.FAILED and "shutdown failed" in job.error
    assert (instance.status, domain_state(instance)) == ("running", "running")
    assert len(active_gpus(instance)) == 1


@pytest.mark.parametrize("permanent", [False, True])
def test_boot_and_reboot_faults(permanent, gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    run_tasks(instance_shutdown, instance=instance, actor=employee)
    times = None if permanent else 1
    with faults.injected(Step.START, uri=gpu_host.libvirt_uri, permanent=permanent, times=times):
        boot = run_tasks(instance_boot, instance=instance, actor=employee)
    boot.refresh_from_db()
    instance.refresh_from_db()
    if permanent:
        assert (boot.status, instance.status, domain_state(instance)) == ("failed", "offline", "shut off")
        run_tasks(instance_boot, instance=instance, actor=employee)
    with faults.injected(Step.START, uri=gpu_host.libvirt_uri, permanent=permanent, times=times):
        reboot = run_tasks(instance_reboot, instance=instance, actor=employee)
    reboot.refresh_from_db()
    instance.refresh_from_db()
    expected = ("failed", "offline", "shut off") if permanent else ("finished", "running", "running")
    assert (reboot.status, instance.status, domain_state(instance)) == expected
    assert len(active_gpus(instance)) == 1  # a failed power job never gives the card away


def test_delete_with_a_transient_undefine_fault_completes(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
    with faults.injected(Step.UNDEFINE, uri=gpu_host.libvirt_uri, times=2):
        job = run_tasks(instance_delete, instance=instance, actor=employee)
    job.refresh_from_db()
    assert job.status == Job.Status.FINISHED
    assert domain_state(instance) is None and nothing_leaked(instance)


def test_delete_that_cannot_undefine_keeps_the_gpus_and_can_be_retried(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
    held = active_gpus(instance)
    with faults.injected(Step.UNDEFINE, uri=gpu_host.libvirt_uri, permanent=True, times=None):
        job = run_tasks(instance_delete, instance=instance, actor=employee)
    job.refresh_from_db()
    instance.refresh_from_db()
    assert job.status == Job.Status.FAILED and "keeps its resources" in job.error
    assert instance.status == Instance.Status.DELETING
    assert len(active_gpus(instance)) == 2  # a domain may still hold them: not handed to anyone else
    run_tasks(instance_delete, instance=instance, actor=employee)
    instance.refresh_from_db()
    assert instance.status == Instance.Status.DELETED and nothing_leaked(instance)
    assert gpu_states(held) == {GpuDevice.State.AVAILABLE}


@pytest.mark.parametrize("step", [Step.SHUTDOWN, Step.DEFINE, Step.START])
def test_failed_resize_goes_back_to_the_old_shape(step, gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    [card] = active_gpus(instance)
    # The fault fires once per attempt of the resize only; the rollback's own define/start then succeed.
    faults.inject(step, uri=gpu_host.libvirt_uri, permanent=True, times=1)
    job = run_tasks(instance_resize, instance=instance, actor=employee, plan=plans[2])
    job.refresh_from_db()
    instance.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert instance.instance_type == plans[1]
    assert active_gpus(instance) == [card]
    assert (instance.status, domain_state(instance)) == ("running", "running")


def test_resize_that_does_not_fit_keeps_the_old_shape(gpu_host, employee, plans, region, image, run_tasks):
    others = [run_tasks(create, user=employee, plan=plans[1], region=region, image=image) for _ in range(3)]
    instance = others.pop()
    job = run_tasks(instance_resize, instance=instance, actor=employee, plan=plans[4])
    job.refresh_from_db()
    instance.refresh_from_db()
    assert job.status == Job.Status.FAILED and "does not fit now" in job.error
    assert (instance.instance_type, instance.status, domain_state(instance)) == (
        plans[1],
        "running",
        "running",
    )


def test_running_a_finished_job_again_changes_nothing(gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    job = last_job(instance)
    assert "already finished" in run_job(job.pk)
    # Replaying the whole task from the start (a duplicate delivery) converges to the same domain.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED)
    assert "finished" in run_job(job.pk)
    instance.refresh_from_db()
    assert (instance.status, domain_state(instance), len(active_gpus(instance))) == ("running", "running", 1)


class WorkerKilled(BaseException):
    """Stands for the worker process dying: not an Exception, so nothing in the task catches it."""


@override_settings(Q_CLUSTER={"sync": True, "retry": 1, "timeout": 1, "orm": "default"})
def test_a_worker_killed_between_steps_converges_when_the_job_is_resumed(
    gpu_host, employee, plans, region, image, django_capture_on_commit_callbacks, monkeypatch
):
    from provisioning import jobs

    real_progress = jobs.job_progress

    def die_after_define(*, job, step, percent):
        real_progress(job=job, step=step, percent=percent)
        if step == "define":
            raise WorkerKilled

    monkeypatch.setattr(jobs, "job_progress", die_after_define)
    with pytest.raises(WorkerKilled), django_capture_on_commit_callbacks(execute=True):
        instance = create(user=employee, plan=plans[3], region=region, image=image)
    instance = Instance.objects.get(label__startswith="gpu-")
    job = last_job(instance)
    assert (job.status, job.step, domain_state(instance)) == ("started", "define", "shut off")
    monkeypatch.setattr(jobs, "job_progress", real_progress)

    from datetime import timedelta

    from django.utils import timezone

    # A fresh sweep leaves the job alone while its worker's lease is live ...
    assert reconcile.jobs_resume() == 0
    # ... and queues it once the lease has expired (the worker died and stopped renewing it).
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        resumed = reconcile.jobs_resume()
    assert resumed == 1
    job.refresh_from_db()
    instance.refresh_from_db()
    assert (job.status, instance.status, domain_state(instance)) == ("finished", "running", "running")
    assert len(active_gpus(instance)) == 3
