"""Every job says who set it going (the account's user, staff, or the system), and every change to an
instance, power actions included, is an audit row with who, when and what."""

import pytest

from accounts.models import AuditRecord, Origin
from provisioning.models import Job
from provisioning.reconcile import reconcile_host
from provisioning.services import (
    instance_boot,
    instance_delete,
    instance_reboot,
    instance_resize,
    instance_shutdown,
)
from tests.builders import make_user
from tests.provisioning.helpers import create, domain_of, last_job

pytestmark = pytest.mark.django_db


def audit_of(instance, action: str) -> AuditRecord:
    return AuditRecord.objects.get(
        target_type="provisioning.instance", target_id=str(instance.pk), action=action
    )


def test_a_create_by_the_accounts_own_user_is_the_customers(
    employee, plans, region, image, gpu_host, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)

    job = last_job(instance)
    assert (job.origin, job.actor) == (Origin.CUSTOMER, employee)
    record = audit_of(instance, "instance.create")
    assert (record.origin, record.actor) == (Origin.CUSTOMER, employee)
    assert record.detail == f"g1-gpu-rtx6000-1 in us-east (job {job.pk})"


def test_a_staff_member_acting_for_another_account_is_staff(
    employee, plans, region, image, gpu_host, run_tasks
):
    staff = make_user(staff=True)  # a member of another account
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)

    job = run_tasks(instance_reboot, instance=instance, actor=staff)

    assert (job.origin, job.actor) == (Origin.STAFF, staff)
    assert audit_of(instance, "instance.reboot").origin == Origin.STAFF


@pytest.mark.parametrize(
    ("service", "action"),
    [
        (instance_shutdown, "instance.shutdown"),
        (instance_boot, "instance.boot"),
        (instance_reboot, "instance.reboot"),
        (instance_delete, "instance.delete"),
    ],
)
def test_power_actions_are_audited_with_who_when_and_which_job(
    employee, plans, region, image, gpu_host, run_tasks, service, action
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)

    job = run_tasks(service, instance=instance, actor=employee)

    record = audit_of(instance, action)
    assert (record.actor, record.origin, record.detail) == (employee, Origin.CUSTOMER, f"job {job.pk}")
    assert record.created >= job.created


def test_a_refused_power_action_writes_no_audit_row(employee, plans, region, image, gpu_host, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    Job.objects.create(instance=instance, account=instance.account, action=Job.Action.REBOOT)

    with pytest.raises(Exception, match="Linode busy"):
        instance_boot(instance=instance, actor=employee)

    assert not AuditRecord.objects.filter(action="instance.boot").exists()


def test_a_resize_is_audited_with_its_job(employee, plans, region, image, gpu_host, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    job = run_tasks(instance_resize, instance=instance, actor=employee, plan=plans[2])
    assert (
        audit_of(instance, "instance.resize").detail == f"g1-gpu-rtx6000-1 -> g1-gpu-rtx6000-2 (job {job.pk})"
    )


def test_the_reconciles_rebuild_and_repairs_are_the_systems(
    employee, plans, region, image, gpu_host, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    domain = domain_of(instance)
    domain.destroy()
    domain.undefine()

    run_tasks(reconcile_host, host=gpu_host)

    job = last_job(instance)
    assert (job.action, job.origin, job.actor) == (Job.Action.BOOT, Origin.RECONCILE, None)
    record = audit_of(instance, "instance.boot")
    assert (record.origin, record.actor) == (Origin.RECONCILE, None)
    assert record.detail == f"job {job.pk}: its domain vanished from {gpu_host.hostname}: rebuilding it"

    domain_of(instance).destroy()  # stopped behind our back: the reconcile starts it again
    reconcile_host(host=gpu_host)
    repair = audit_of(instance, "instance.reconcile")
    assert repair.origin == Origin.RECONCILE and "restarted" in repair.detail


def test_a_job_with_nobody_behind_it_is_the_schedules(employee, plans, region, image, gpu_host, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    job = run_tasks(instance_shutdown, instance=instance, actor=None)
    assert (job.origin, job.actor) == (Origin.SCHEDULE, None)
    assert audit_of(instance, "instance.shutdown").origin == Origin.SCHEDULE
