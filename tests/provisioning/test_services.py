"""What instance_create and friends refuse, and that a refusal changes nothing."""

import pytest
from waffle.models import Switch

from accounts.flags import GPU_INSTANCES, PROVISIONING_ENABLED
from gpuadmin.models import Flag
from inventory.models import GpuDevice
from provisioning.exceptions import (
    InstanceBusy,
    InvalidRequest,
    LabelTaken,
    NoCapacity,
    PlanNotFound,
    ProvisioningDisabled,
)
from provisioning.models import Allocation, Instance, Job
from provisioning.services import instance_create, instance_create_problems, instance_update, plan_for
from provisioning.tasks import run_job
from tests.builders import make_user
from tests.provisioning.helpers import ROOT_PASS, create, domain_state, last_job

pytestmark = pytest.mark.django_db


def nothing_written():
    return not (Instance.objects.exists() or Allocation.objects.exists() or Job.objects.exists())


@pytest.mark.parametrize(
    ("label", "ok"),
    [
        ("web", True),
        ("my-gpu_box.1", True),
        ("ab", False),
        ("a" * 65, False),
        ("-starts-with-dash", False),
        ("ends.", False),
        ("two--dashes", False),
        ("spaces not allowed", False),
    ],
)
def test_label_rules(label, ok, gpu_host, employee, plans, region, image):
    if ok:
        assert create(user=employee, plan=plans[1], region=region, image=image, label=label).label == label
    else:
        with pytest.raises(InvalidRequest) as excinfo:
            create(user=employee, plan=plans[1], region=region, image=image, label=label)
        assert excinfo.value.field == "label"
        assert nothing_written()


def test_labels_are_unique_per_account_but_not_across_accounts(gpu_host, employee, plans, region, image):
    create(user=employee, plan=plans[1], region=region, image=image, label="trainer")
    with pytest.raises(LabelTaken, match="Label must be unique among your linodes"):
        create(user=employee, plan=plans[1], region=region, image=image, label="trainer")
    other = make_user(account=None)
    Flag.objects.get(name=GPU_INSTANCES).accounts.add(other.membership.account)
    assert create(user=other, plan=plans[1], region=region, image=image, label="trainer").label == "trainer"


def test_a_generated_label_follows_the_rules(gpu_host, employee, plans, region, image):
    instance = create(user=employee, plan=plans[1], region=region, image=image)
    assert instance.label.startswith("gpu-us-east-") and 3 <= len(instance.label) <= 64


@pytest.mark.parametrize(
    ("root_pass", "keys", "field"),
    [
        (None, [], "root_pass"),
        ("short1A!", [], "root_pass"),
        ("alllowercaseletters", [], "root_pass"),
        (None, ["not a key"], "authorized_keys"),
    ],
)
def test_credentials_are_required_and_checked(
    root_pass, keys, field, gpu_host, employee, plans, region, image
):
    with pytest.raises(InvalidRequest) as excinfo:
        instance_create(
            account=employee.membership.account,
            actor=employee,
            plan=plans[1],
            region=region,
            image=image,
            root_pass=root_pass,
            authorized_keys=keys,
        )
    assert excinfo.value.field == field
    assert nothing_written()


def test_the_root_password_is_never_stored_in_clear(gpu_host, employee, plans, region, image):
    instance = create(user=employee, plan=plans[1], region=region, image=image)
    instance.refresh_from_db()
    assert ROOT_PASS not in instance.cloud_init_user_data
    assert "$6$" in instance.cloud_init_user_data
    assert all(ROOT_PASS not in str(job.params) for job in instance.jobs.all())


def test_gpu_plans_are_absent_for_accounts_without_the_flag(gpu_host, plans, region, image):
    customer = make_user()
    with pytest.raises(PlanNotFound, match="A valid plan type by that ID was not found"):
        plan_for(user=customer, plan_id=plans[1].pk)
    with pytest.raises(PlanNotFound):
        create(user=customer, plan=plans[1], region=region, image=image)
    assert nothing_written()
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)
    assert create(user=customer, plan=plans[1], region=region, image=image).pk


def test_no_capacity_names_region_plan_and_resource_and_writes_nothing(
    gpu_host, employee, plans, region, image
):
    create(user=employee, plan=plans[4], region=region, image=image)
    before = (Instance.objects.count(), Allocation.objects.count(), Job.objects.count())
    with pytest.raises(NoCapacity) as excinfo:
        create(user=employee, plan=plans[1], region=region, image=image)
    assert "us-east" in excinfo.value.detail
    assert (Instance.objects.count(), Allocation.objects.count(), Job.objects.count()) == before


def test_kill_switch_refuses_creates_and_holds_queued_jobs(
    gpu_host, employee, plans, region, image, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        instance = create(user=employee, plan=plans[1], region=region, image=image)
    Switch.objects.filter(name=PROVISIONING_ENABLED).update(active=False)
    with pytest.raises(ProvisioningDisabled, match="paused"):
        create(user=employee, plan=plans[1], region=region, image=image)
    for callback in queued:
        callback()
    job = last_job(instance)
    assert job.status == Job.Status.SCHEDULED and job.attempts == 0
    assert domain_state(instance) is None
    Switch.objects.filter(name=PROVISIONING_ENABLED).update(active=True)
    assert "finished" in run_job(job.pk)
    assert domain_state(instance) == "running"


def test_a_second_job_is_refused_while_one_is_in_flight(gpu_host, employee, plans, region, image):
    from provisioning.services import instance_reboot

    instance = create(user=employee, plan=plans[1], region=region, image=image)  # create job still scheduled
    with pytest.raises(InstanceBusy, match="Linode busy."):
        instance_reboot(instance=instance, actor=employee)
    assert instance.jobs.count() == 1


def test_update_changes_label_tags_group(gpu_host, employee, plans, region, image):
    instance = create(user=employee, plan=plans[1], region=region, image=image, label="first")
    create(user=employee, plan=plans[1], region=region, image=image, label="taken")
    updated = instance_update(instance=instance, actor=employee, label="second", tags=["gpu", "gpu", "prod"])
    assert (updated.label, updated.tags) == ("second", ["gpu", "prod"])
    with pytest.raises(LabelTaken):
        instance_update(instance=instance, actor=employee, label="taken")
    instance.refresh_from_db()
    assert instance.label == "second"


def test_cards_in_cleaning_are_not_given_out(gpu_host, employee, plans, region, image):
    GpuDevice.objects.filter(host=gpu_host).update(state=GpuDevice.State.CLEANING)
    from inventory.counters import numa_counters_recount

    numa_counters_recount(host=gpu_host)
    with pytest.raises(NoCapacity):
        create(user=employee, plan=plans[1], region=region, image=image)


def test_create_problems_lists_every_refusal_in_the_order_create_raises_them(
    employee, gpu_host, plans, region, image, run_tasks
):
    run_tasks(create, user=employee, plan=plans[1], region=region, image=image, label="taken")
    # One of the host's four cards is taken now, so a 4-GPU plan fits nowhere.
    Switch.objects.filter(name=PROVISIONING_ENABLED).update(active=False)
    request = {
        "account": employee.membership.account,
        "actor": employee,
        "plan": plans[4],
        "region": region,
        "image": image,
        "label": "taken",
        "root_pass": ROOT_PASS,
        "authorized_keys": ["not a key"],
    }

    problems = instance_create_problems(**request)

    assert [type(p) for p in problems] == [ProvisioningDisabled, InvalidRequest, LabelTaken, NoCapacity]
    assert problems[1].field == "authorized_keys"
    assert Instance.objects.count() == 1  # nothing written
    with pytest.raises(ProvisioningDisabled):
        instance_create(**request)
    # Without capacity the list still carries everything else.
    assert len(instance_create_problems(**request, with_capacity=False)) == 3
