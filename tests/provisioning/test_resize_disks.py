"""What a resize does to the disk, on test-driver hosts (simulated: they say so in the job).

The same flows move real data on the real libvirtd in test_volume_copy_libvirtd.py.
"""

import pytest

from hypervisor import faults
from hypervisor.connection import connect
from hypervisor.faults import Step
from hypervisor.spec import instance_volume_name
from inventory.models import GpuDevice, Host
from provisioning.models import Allocation, Instance, Job
from provisioning.selectors import instance_disk_mib
from provisioning.services import instance_resize
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.helpers import create, domain_state, last_job

pytestmark = pytest.mark.django_db


def volumes_on(host: Host) -> list[str]:
    return connect(host.libvirt_uri).storagePoolLookupByName(host.storage_pool).listVolumes()


def test_a_resize_on_the_same_host_grows_the_disk(gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    instance.refresh_from_db()
    assert instance.disk_mib == plans[1].disk_mib
    run_tasks(instance_resize, instance=instance, actor=employee, plan=plans[2])
    job = last_job(instance)
    assert job.status == Job.Status.FINISHED, job.error
    # The test driver cannot resize a volume: the job says the grow was simulated, not done.
    assert job.params["simulated_steps"] == ["grow volume"]
    instance.refresh_from_db()
    assert (instance.host, instance.disk_mib) == (gpu_host, plans[2].disk_mib)


def test_a_resize_its_host_cannot_take_moves_the_disk_first(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    old_gpus = {row.gpu_id for row in Allocation.objects.get(instance=instance).gpus.all()}
    Host.objects.filter(pk=gpu_host.pk).update(state=Host.State.DRAINING)
    other = enroll_rtx_host(region)

    run_tasks(instance_resize, instance=instance, actor=employee, plan=plans[2])

    job = last_job(instance)
    assert job.status == Job.Status.FINISHED, job.error
    # The seed is written afresh on the new host: on the test driver that upload is simulated too.
    assert job.params["simulated_steps"] == ["copy volume", "grow volume", "seed"]
    instance.refresh_from_db()
    assert (instance.host, instance.instance_type, instance.status) == (
        other,
        plans[2],
        Instance.Status.RUNNING,
    )
    assert domain_state(instance) == "running"
    assert instance_volume_name(instance.pk) in volumes_on(other)
    assert instance_volume_name(instance.pk) not in volumes_on(gpu_host)
    assert connect(gpu_host.libvirt_uri).listAllDomains(0) == []
    assert list(
        Allocation.objects.filter(instance=instance, released_at=None).values_list("host", flat=True)
    ) == [other.pk]
    # The old cards went through cleaning once the source was let go (the test driver cannot reset them).
    assert not GpuDevice.objects.filter(pk__in=old_gpus, state=GpuDevice.State.RESERVED).exists()
    assert not Allocation.objects.filter(gpus__gpu_id__in=old_gpus, released_at=None).exists()


@pytest.mark.parametrize("step", [Step.COPY, Step.GROW, Step.DEFINE])
def test_a_move_that_fails_before_the_new_domain_is_defined_leaves_everything_where_it_was(
    step, gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    allocation = Allocation.objects.get(instance=instance)
    held = (
        sorted(allocation.gpus.values_list("gpu_id", flat=True)),
        sorted(allocation.cpus.values_list("cpu_id", "vcpu")),
    )
    Host.objects.filter(pk=gpu_host.pk).update(state=Host.State.DRAINING)
    other = enroll_rtx_host(region)
    faults.inject(step, uri=other.libvirt_uri, permanent=True, times=None)

    run_tasks(instance_resize, instance=instance, actor=employee, plan=plans[2])

    job = last_job(instance)
    assert job.status == Job.Status.FAILED and f"{step} failed" in job.error
    assert "back on" in job.error
    faults.clear()
    instance.refresh_from_db()
    assert (instance.host, instance.instance_type, instance.status) == (
        gpu_host,
        plans[1],
        Instance.Status.RUNNING,
    )
    assert domain_state(instance) == "running"
    assert list(Allocation.objects.filter(instance=instance, released_at=None)) == [allocation]
    allocation.refresh_from_db()
    assert not allocation.move_source
    assert (
        sorted(allocation.gpus.values_list("gpu_id", flat=True)),
        sorted(allocation.cpus.values_list("cpu_id", "vcpu")),
    ) == held
    assert instance_volume_name(instance.pk) in volumes_on(gpu_host)
    assert instance_volume_name(instance.pk) not in volumes_on(other)
    assert connect(other.libvirt_uri).listAllDomains(0) == []
    assert not Allocation.objects.filter(host=other, released_at=None).exists()


def test_a_resize_to_a_plan_with_less_disk_keeps_the_larger_disk(
    gpu_host, employee, plans, region, image, run_tasks
):
    """A disk is never shrunk (the filesystem inside is the customer's): the smaller plan is taken, the
    disk keeps its size, and /disks says so."""
    instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
    run_tasks(instance_resize, instance=instance, actor=employee, plan=plans[1])
    job = last_job(instance)
    assert job.status == Job.Status.FINISHED, job.error
    instance.refresh_from_db()
    assert (instance.instance_type, instance.disk_mib) == (plans[1], plans[2].disk_mib)
    assert instance_disk_mib(instance=instance) == plans[2].disk_mib > plans[1].disk_mib
    assert job.params.get("simulated_steps", []) == []  # nothing to grow: not even a simulated grow
