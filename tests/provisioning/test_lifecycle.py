"""End to end on libvirt's test driver: services -> job rows -> tasks -> libvirt domains, and back."""

import pytest

from inventory.models import GpuDevice
from provisioning.models import Instance, Job
from provisioning.services import (
    instance_boot,
    instance_delete,
    instance_reboot,
    instance_resize,
    instance_shutdown,
)
from tests.provisioning.helpers import (
    active_cpu_ids,
    active_gpus,
    create,
    domain_state,
    hostdev_addresses,
    last_job,
    nothing_leaked,
    pinned_cpus,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("gpus", [1, 2, 3, 4])
def test_create_runs_a_domain_that_matches_its_allocation(
    gpus, gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[gpus], region=region, image=image)
    instance.refresh_from_db()
    job = last_job(instance)
    assert (job.action, job.status, job.percent_complete) == (Job.Action.CREATE, Job.Status.FINISHED, 100)
    assert instance.status == Instance.Status.RUNNING
    assert domain_state(instance) == "running"
    held = active_gpus(instance)
    assert len(held) == gpus
    assert hostdev_addresses(instance) == {address for gpu in held for address in gpu.functions}
    assert pinned_cpus(instance) == active_cpu_ids(instance)
    assert len(pinned_cpus(instance)) == plans[gpus].vcpus


def test_create_offline_defines_but_does_not_start(gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image, booted=False)
    instance.refresh_from_db()
    assert instance.status == Instance.Status.OFFLINE
    assert domain_state(instance) == "shut off"


def test_power_cycle(gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
    run_tasks(instance_shutdown, instance=instance, actor=employee)
    instance.refresh_from_db()
    assert (instance.status, domain_state(instance)) == (Instance.Status.OFFLINE, "shut off")
    run_tasks(instance_boot, instance=instance, actor=employee)
    instance.refresh_from_db()
    assert (instance.status, domain_state(instance)) == (Instance.Status.RUNNING, "running")
    run_tasks(instance_reboot, instance=instance, actor=employee)
    instance.refresh_from_db()
    assert (instance.status, domain_state(instance)) == (Instance.Status.RUNNING, "running")
    assert [j.action for j in instance.jobs.order_by("id")] == [
        Job.Action.CREATE,
        Job.Action.SHUTDOWN,
        Job.Action.BOOT,
        Job.Action.REBOOT,
    ]
    assert all(j.status == Job.Status.FINISHED for j in instance.jobs.all())


def test_resize_one_to_two_gpus_keeps_the_card_and_redefines(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    [first_gpu] = active_gpus(instance)
    job = run_tasks(instance_resize, instance=instance, actor=employee, plan=plans[2])
    job.refresh_from_db()
    instance.refresh_from_db()
    assert job.status == Job.Status.FINISHED, job.error
    assert instance.instance_type == plans[2]
    assert instance.status == Instance.Status.RUNNING
    held = active_gpus(instance)
    assert len(held) == 2 and first_gpu in held
    assert hostdev_addresses(instance) == {address for gpu in held for address in gpu.functions}
    assert len(pinned_cpus(instance)) == plans[2].vcpus
    assert domain_state(instance) == "running"


def test_delete_releases_everything_and_gpus_come_back_after_cleaning(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[4], region=region, image=image)
    held = active_gpus(instance)
    run_tasks(instance_delete, instance=instance, actor=employee)
    instance.refresh_from_db()
    assert instance.status == Instance.Status.DELETED and instance.deleted_at is not None
    assert domain_state(instance) is None
    assert nothing_leaked(instance)
    states = set(GpuDevice.objects.filter(pk__in=[g.pk for g in held]).values_list("state", flat=True))
    assert states == {GpuDevice.State.AVAILABLE}


def test_released_gpus_wait_in_cleaning_until_the_reset_task_runs(
    gpu_host, employee, plans, region, image, run_tasks, django_capture_on_commit_callbacks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    [gpu] = active_gpus(instance)
    with django_capture_on_commit_callbacks() as queued:
        instance_delete(instance=instance, actor=employee)
    assert len(queued) == 1  # the delete task, not yet run
    queued[0]()  # the delete task runs; it queues the reset, which does not run yet
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.CLEANING
    assert nothing_leaked(instance)
    from provisioning.tasks import clean_gpu

    clean_gpu(gpu.pk)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE


def test_an_operation_in_flight_makes_the_instance_busy(gpu_host, employee, plans, region, image, run_tasks):
    from provisioning.exceptions import InstanceBusy

    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    instance_shutdown(instance=instance, actor=employee)  # job scheduled, task not run
    with pytest.raises(InstanceBusy, match="Linode busy."):
        instance_boot(instance=instance, actor=employee)
    assert instance.jobs.filter(status=Job.Status.SCHEDULED).count() == 1
