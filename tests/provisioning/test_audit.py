"""The fleet audit (provisioning.audit, manage.py audit_fleet) finds each kind of broken invariant."""

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F

from inventory.models import GpuDevice, HostCpu, NumaNode
from provisioning.audit import fleet_violations
from provisioning.models import AllocatedCpu, Instance, Job
from provisioning.services import instance_shutdown
from tests.provisioning.helpers import create, domain_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance(gpu_host, employee, plans, region, image, run_tasks):
    return run_tasks(create, user=employee, plan=plans[2], region=region, image=image)


def test_a_fleet_built_by_the_services_is_sound_running_or_off(instance, employee, run_tasks):
    assert fleet_violations() == []
    run_tasks(instance_shutdown, instance=instance, actor=employee)
    assert fleet_violations() == []
    call_command("audit_fleet")


def test_an_allocation_outliving_its_instance_is_a_leak(instance):
    Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.DELETED)
    assert any("leaked" in line for line in fleet_violations(hypervisor=False))
    with pytest.raises(CommandError, match="invariant"):
        call_command("audit_fleet", "--no-hypervisor")


def test_a_counter_that_a_recount_would_change_is_reported_and_left_as_it_was(instance):
    NumaNode.objects.filter(host=instance.host).update(free_gpus=F("free_gpus") + 1)
    before = list(NumaNode.objects.filter(host=instance.host).values_list("free_gpus", flat=True))
    assert any("counter" in line for line in fleet_violations(hypervisor=False))
    assert list(NumaNode.objects.filter(host=instance.host).values_list("free_gpus", flat=True)) == before


def test_a_domain_off_while_it_should_run_or_gone_or_unowned_is_reported(instance):
    domain = domain_of(instance)
    domain.destroy()
    assert any("should run but is shut off" in line for line in fleet_violations())
    xml = domain.XMLDesc(0)
    domain.undefine()
    assert any("has no domain" in line for line in fleet_violations())
    domain.connect().defineXML(xml.replace(str(instance.domain_uuid), "6f1d4c5e-0000-4000-8000-00000000abcd"))
    assert any("has no live instance" in line for line in fleet_violations())


def test_a_domain_pinned_elsewhere_than_its_allocation_is_reported(instance):
    row = AllocatedCpu.objects.filter(allocation__instance=instance).order_by("vcpu").first()
    free = HostCpu.objects.filter(host=instance.host, reserved=False, allocations__isnull=True).first()
    AllocatedCpu.objects.filter(pk=row.pk).update(cpu=free)
    assert any("domain pins" in line for line in fleet_violations())


def test_a_job_failed_without_a_reason_or_still_in_flight_is_reported(instance):
    job = Job.objects.get(instance=instance)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error="")
    assert any("failed without a reason" in line for line in fleet_violations(hypervisor=False))
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED)
    assert any("still started" in line for line in fleet_violations(hypervisor=False))
    assert not any("still" in line for line in fleet_violations(hypervisor=False, settled=False))


def test_a_card_allocated_while_faulty_is_reported(instance):
    gpu = GpuDevice.objects.filter(allocations__allocation__instance=instance).first()
    GpuDevice.objects.filter(pk=gpu.pk).update(state=GpuDevice.State.FAULTY)
    assert any("is allocated while faulty" in line for line in fleet_violations(hypervisor=False))
