"""An address is taken in the create transaction, released by delete, rollback and delete-wins into a
cool-down, and an exhausted pool is a clear refusal that writes nothing."""

import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from hypervisor import faults
from hypervisor.faults import Step
from networking.models import Ipv4Address, Ipv4Assignment
from networking.selectors import InstanceIpv4, instance_ipv4, pool_usage
from provisioning.exceptions import NoCapacity
from provisioning.models import Allocation, Instance, Job
from provisioning.services import instance_create_problems, instance_delete
from provisioning.tasks import run_job
from tests.builders import make_pool, make_region
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.helpers import create, domain_of, nothing_leaked

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_region(db):
    """A region whose only pool has two addresses to hand out (a /29: six hosts, gateway and three
    reserved)."""
    region = make_region("eu-small", pool=False)
    make_pool(region=region, network="203.0.113.0/29", reserved="203.0.113.4-203.0.113.6")
    enroll_rtx_host(region)
    return region


def test_a_create_holds_a_pool_address_and_the_guest_learns_prefix_and_gateway(
    small_region, employee, plans, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=small_region, image=image)
    instance.refresh_from_db()
    assert instance.status == Instance.Status.RUNNING
    assert instance.ipv4 == ["203.0.113.2"]  # the lowest free one: .1 is the gateway
    assert instance_ipv4(instance=instance) == InstanceIpv4(
        address="203.0.113.2", prefix_length=29, gateway="203.0.113.1", network="203.0.113.0/29"
    )
    assert instance_ipv4(instance=instance).with_prefix == "203.0.113.2/29"
    (assignment,) = Ipv4Assignment.objects.filter(instance=instance)
    assert (assignment.address.address, assignment.released_at) == ("203.0.113.2", None)
    # The domain libvirt (the test driver) defined and started: bridged, filtered to that address.
    domain = domain_of(instance)
    assert domain.isActive()
    interface = ET.fromstring(domain.XMLDesc(0)).find("devices/interface")
    assert interface.get("type") == "bridge" and interface.find("source").get("bridge") == "br0"
    assert interface.find("filterref").get("filter") == "clean-traffic"
    assert interface.find("filterref/parameter").attrib == {"name": "IP", "value": "203.0.113.2"}
    assert interface.find("bandwidth/outbound").get("average") == str(plans[1].network_out_mbps * 125)


def test_an_exhausted_pool_is_refused_and_nothing_is_written(small_region, employee, plans, image, run_tasks):
    for _ in range(2):
        run_tasks(create, user=employee, plan=plans[1], region=small_region, image=image)
    counts = (Instance.objects.count(), Allocation.objects.count(), Job.objects.count())
    with pytest.raises(NoCapacity, match="eu-small has no free public IPv4 address"):
        create(user=employee, plan=plans[1], region=small_region, image=image, label="third")
    assert (Instance.objects.count(), Allocation.objects.count(), Job.objects.count()) == counts
    assert not Instance.objects.filter(label="third").exists()
    problems = instance_create_problems(
        account=employee.membership.account, actor=employee, plan=plans[1], region=small_region, image=image,
        root_pass="Correct-Horse-42",
    )  # fmt: skip
    assert [p.message for p in problems] == ["eu-small has no free public IPv4 address"]
    (usage,) = pool_usage(region="eu-small")
    assert (usage.held, usage.free) == (2, 0)


def test_a_deleted_instance_s_address_cools_down_before_anyone_gets_it_again(
    small_region, employee, plans, image, run_tasks
):
    first = run_tasks(create, user=employee, plan=plans[1], region=small_region, image=image)
    second = run_tasks(create, user=employee, plan=plans[1], region=small_region, image=image)
    first.refresh_from_db()
    address = first.ipv4[0]
    run_tasks(instance_delete, instance=first, actor=employee)
    first.refresh_from_db()
    assert first.status == Instance.Status.DELETED and first.ipv4 == [] and nothing_leaked(first)
    assert instance_ipv4(instance=first) is None
    row = Ipv4Address.objects.get(address=address)
    assert row.holder is None and row.free_after > timezone.now() + timedelta(minutes=59)
    (usage,) = pool_usage(region="eu-small")
    assert (usage.held, usage.cooling, usage.free) == (1, 1, 0)
    with pytest.raises(NoCapacity, match="no free public IPv4 address"):
        create(user=employee, plan=plans[1], region=small_region, image=image)
    Ipv4Address.objects.filter(pk=row.pk).update(free_after=timezone.now() - timedelta(seconds=1))
    third = run_tasks(create, user=employee, plan=plans[1], region=small_region, image=image)
    third.refresh_from_db()
    assert third.ipv4 == [address] and second.pk != third.pk
    history = Ipv4Assignment.objects.filter(address=row).order_by("id")
    assert [(a.instance_id, a.released_at is None) for a in history] == [(first.pk, False), (third.pk, True)]


@override_settings(GPUADMIN_ADDRESS_COOLDOWN_SECONDS=0)
def test_with_no_cool_down_the_address_is_free_at_once(small_region, employee, plans, image, run_tasks):
    first = run_tasks(create, user=employee, plan=plans[1], region=small_region, image=image)
    address = Instance.objects.get(pk=first.pk).ipv4
    run_tasks(instance_delete, instance=first, actor=employee)
    again = run_tasks(create, user=employee, plan=plans[1], region=small_region, image=image)
    assert Instance.objects.get(pk=again.pk).ipv4 == address


def test_a_create_that_rolls_back_releases_its_address(small_region, employee, plans, image, run_tasks):
    host = small_region.hosts.get()
    faults.inject(Step.DEFINE, uri=host.libvirt_uri, permanent=True, times=None)
    instance = run_tasks(create, user=employee, plan=plans[1], region=small_region, image=image)
    instance.refresh_from_db()
    assert instance.status == Instance.Status.FAILED
    assert instance.ipv4 == [] and nothing_leaked(instance)
    assert Ipv4Address.objects.get(address="203.0.113.2").free_after is not None


def test_a_delete_that_supersedes_the_create_releases_the_address(
    small_region, employee, plans, image, run_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        instance = create(user=employee, plan=plans[1], region=small_region, image=image)
    create_job = instance.jobs.get()
    with django_capture_on_commit_callbacks():
        delete = instance_delete(instance=instance, actor=employee)
    run_tasks(run_job, delete.pk)
    run_tasks(run_job, create_job.pk)  # the superseded create, after the delete
    instance.refresh_from_db()
    assert instance.status == Instance.Status.DELETED and nothing_leaked(instance)
    assert not Ipv4Address.objects.filter(holder__isnull=False).exists()
