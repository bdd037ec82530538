"""Rebuild (a fresh disk from a new image, new credentials) and root password reset, through the worker."""

import pytest

from hypervisor import faults
from hypervisor.connection import connect
from hypervisor.faults import Step
from hypervisor.spec import image_volume_name, instance_volume_name
from provisioning.cloudinit import authorized_keys_of
from provisioning.exceptions import InstanceBusy, InvalidRequest
from provisioning.models import Allocation, Instance, Job
from provisioning.services import (
    image_for,
    instance_password_reset,
    instance_rebuild,
    instance_shutdown,
)
from provisioning.tasks import run_job
from tests.builders import make_image
from tests.provisioning.helpers import create, domain_state, last_job

pytestmark = pytest.mark.django_db

NEW_PASS = "Another-Horse-77"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDL8b2Q7x2Y0nH5jH9rS6q0tZ2s5a6d7e8f9g0h1i2j3 alice@laptop"


def backing_of(instance: Instance) -> str | None:
    host = instance.host
    pool = connect(host.libvirt_uri).storagePoolLookupByName(host.storage_pool)
    xml = pool.storageVolLookupByName(instance_volume_name(instance.pk)).XMLDesc(0)
    return (
        xml.split("<backingStore>")[1].split("<path>")[1].split("</path>")[0]
        if "<backingStore>" in xml
        else None
    )


def held(instance: Instance):
    allocation = Allocation.objects.get(instance=instance, released_at=None)
    return (
        allocation.pk,
        sorted(allocation.gpus.values_list("gpu_id", flat=True)),
        sorted(allocation.cpus.values_list("cpu_id", "vcpu")),
    )


def test_a_rebuild_makes_a_fresh_disk_from_the_new_image_and_keeps_gpus_cores_and_address(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
    instance.refresh_from_db()
    before, address = held(instance), instance.ipv4
    debian = make_image("linode/debian12")

    rebuilt = run_tasks(
        instance_rebuild, instance=instance, actor=employee, image=debian, authorized_keys=[KEY]
    )

    assert rebuilt.status == Instance.Status.REBUILDING  # what the API answers at once
    job = last_job(instance)
    assert (job.action, job.status) == (Job.Action.REBUILD, Job.Status.FINISHED), job.error
    instance.refresh_from_db()
    assert (instance.image, instance.status, domain_state(instance)) == (
        debian,
        Instance.Status.RUNNING,
        "running",
    )
    assert backing_of(instance) == image_volume_name("linode/debian12")
    assert held(instance) == before and instance.ipv4 == address
    assert authorized_keys_of(instance.cloud_init_user_data) == [KEY]
    assert "password:" not in instance.cloud_init_user_data  # keys only: no root password hash
    # Run twice (a duplicate delivery): the disk is not wiped a second time.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED)
    # Removing a volume checks the undefine step: armed, it would fail a second wipe.
    wipe = faults.inject(Step.UNDEFINE, uri=gpu_host.libvirt_uri, times=None, permanent=True)
    run_tasks(run_job, job.pk)
    assert last_job(instance).status == Job.Status.FINISHED and wipe.fired == 0
    assert domain_state(instance) == "running"


def test_a_rebuild_with_an_image_that_does_not_exist_is_a_400_and_changes_nothing(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    instance.refresh_from_db()
    jobs, user_data = instance.jobs.count(), instance.cloud_init_user_data
    with pytest.raises(InvalidRequest) as refused:
        image_for(image_id="linode/no-such-image")
    assert refused.value.field == "image"
    with pytest.raises(InvalidRequest, match="root_pass is required"):
        instance_rebuild(instance=instance, actor=employee, image=make_image("linode/debian12"))
    instance.refresh_from_db()
    assert (instance.image, instance.status, instance.jobs.count(), instance.cloud_init_user_data) == (
        image, Instance.Status.RUNNING, jobs, user_data,
    )  # fmt: skip


def test_a_rebuild_that_fails_before_the_disk_is_gone_keeps_the_old_image_and_credentials(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    instance.refresh_from_db()
    user_data = instance.cloud_init_user_data
    faults.inject(Step.SHUTDOWN, uri=gpu_host.libvirt_uri, permanent=True, times=None)
    run_tasks(
        instance_rebuild,
        instance=instance,
        actor=employee,
        image=make_image("linode/debian12"),
        root_pass=NEW_PASS,
    )
    faults.clear()
    assert last_job(instance).status == Job.Status.FAILED
    instance.refresh_from_db()
    assert (instance.image, instance.cloud_init_user_data) == (image, user_data)
    assert backing_of(instance) == image_volume_name(image.pk)


def test_a_password_reset_needs_the_linode_shut_down_and_writes_new_credentials_keeping_the_keys(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(
        create, user=employee, plan=plans[1], region=region, image=image, authorized_keys=[KEY]
    )
    instance.refresh_from_db()
    old = instance.cloud_init_user_data
    with pytest.raises(InvalidRequest, match="shut down"):
        instance_password_reset(instance=instance, actor=employee, root_pass=NEW_PASS)
    instance.refresh_from_db()
    assert instance.cloud_init_user_data == old and last_job(instance).action == Job.Action.CREATE

    run_tasks(instance_shutdown, instance=instance, actor=employee)
    with pytest.raises(InvalidRequest, match="root_pass"):
        instance_password_reset(instance=instance, actor=employee, root_pass="short")
    run_tasks(instance_password_reset, instance=instance, actor=employee, root_pass=NEW_PASS)

    job = last_job(instance)
    assert (job.action, job.status) == (Job.Action.PASSWORD, Job.Status.FINISHED), job.error
    instance.refresh_from_db()
    assert instance.status == Instance.Status.OFFLINE and domain_state(instance) == "shut off"
    assert instance.cloud_init_user_data != old and NEW_PASS not in instance.cloud_init_user_data
    assert "$6$" in instance.cloud_init_user_data and authorized_keys_of(instance.cloud_init_user_data) == [
        KEY
    ]
    # While its job runs, a second request is busy.
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED)
    with pytest.raises(InstanceBusy):
        instance_password_reset(instance=instance, actor=employee, root_pass=NEW_PASS)
