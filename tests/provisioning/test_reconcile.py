"""Reconcile compares libvirt with the database: repairs what is safe, reports (never destroys) the rest."""

import pytest
from django.core.management import call_command

from hypervisor.connection import connect
from provisioning.models import Instance, Job
from provisioning.reconcile import reconcile_host
from provisioning.services import instance_shutdown
from tests.provisioning.helpers import active_gpus, create, domain_of, domain_state, last_job, nothing_leaked

pytestmark = pytest.mark.django_db


def test_a_host_in_sync_reports_nothing(gpu_host, employee, plans, region, image, run_tasks):
    run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    report = reconcile_host(host=gpu_host)
    assert report.checked == 1 and report.clean


def test_a_domain_that_stopped_behind_our_back_is_restarted(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    domain_of(instance).destroy()
    report = reconcile_host(host=gpu_host)
    assert domain_state(instance) == "running"
    assert any("restarted" in line for line in report.repaired)


def test_a_domain_running_while_the_database_says_offline_is_recorded_as_running(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    run_tasks(instance_shutdown, instance=instance, actor=employee)
    domain_of(instance).create()
    reconcile_host(host=gpu_host)
    instance.refresh_from_db()
    assert (instance.status, instance.booted) == (Instance.Status.RUNNING, True)


def test_a_vanished_domain_is_reported_and_rebuilt(gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
    domain = domain_of(instance)
    domain.destroy()
    domain.undefine()
    report = run_tasks(reconcile_host, host=gpu_host)
    assert any("vanished" in line for line in report.problems)
    assert last_job(instance).action == Job.Action.BOOT
    assert domain_state(instance) == "running"
    assert len(active_gpus(instance)) == 2


def test_a_domain_nobody_owns_is_reported_and_left_alone(gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    conn = connect(gpu_host.libvirt_uri)
    xml = domain_of(instance).XMLDesc(0)
    stray = xml.replace(str(instance.domain_uuid), "6f1d4c5e-0000-4000-8000-000000000001")
    stray = stray.replace(f"gpuadmin-{instance.pk}<", "gpuadmin-999999<").replace(
        f'id="{instance.pk}"', 'id="999999"'
    )
    conn.defineXML(stray)
    report = reconcile_host(host=gpu_host)
    assert any(
        "6f1d4c5e-0000-4000-8000-000000000001" in line and "left untouched" in line
        for line in report.problems
    )
    assert conn.lookupByUUIDString("6f1d4c5e-0000-4000-8000-000000000001") is not None


def test_allocations_of_instances_that_are_gone_are_released(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.DELETED)
    report = run_tasks(reconcile_host, host=gpu_host)
    assert nothing_leaked(instance)
    assert any("released the allocation" in line for line in report.repaired)


def test_instances_with_a_job_in_flight_are_left_to_their_job(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    domain_of(instance).destroy()
    instance_shutdown(instance=instance, actor=employee)  # queued, not run
    report = reconcile_host(host=gpu_host)
    assert domain_state(instance) == "shut off" and report.clean


def test_reconcile_command_prints_findings_and_fails_on_unknown_hosts(
    gpu_host, employee, plans, region, image, run_tasks, capsys
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    domain_of(instance).destroy()
    call_command("reconcile", "--host", gpu_host.hostname)
    out = capsys.readouterr().out
    assert f"{gpu_host.hostname}: 1 instances, drift" in out and "restarted" in out
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Unknown host"):
        call_command("reconcile", "--host", "no-such-host")
