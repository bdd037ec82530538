"""The job list says who set each job going and for which account; jobs and audit rows are never edited or
deleted from the admin; admin actions are the staff's in both."""

import pytest
from django.urls import reverse

from accounts.models import AuditRecord, Origin
from provisioning.models import Instance, Job
from tests.builders import make_allocation, make_instance, make_user
from tests.gpuadmin.conftest import make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(fleet):
    instance = make_instance(
        plan=fleet.plans[1], region=fleet.region, account=fleet.customer, label="trainer"
    )
    make_allocation(instance=instance, host=fleet.hosts[0], gpus=1, vcpus=8, memory_mib=32 * 1024)
    Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.RUNNING)
    instance.refresh_from_db()
    return instance


def test_the_job_list_shows_origin_and_account(client, superuser, fleet, running):
    customer = make_user(account=fleet.customer, username="farmer")
    for origin, actor in [(Origin.CUSTOMER, customer), (Origin.STAFF, superuser), (Origin.RECONCILE, None)]:
        Job.objects.create(
            instance=running,
            account=fleet.customer,
            action=Job.Action.BOOT,
            status=Job.Status.FINISHED,
            origin=origin,
            actor=actor,
        )
    client.force_login(superuser)

    html = client.get(reverse("admin:provisioning_job_changelist")).content.decode()

    assert "Customer (farmer)" in html
    assert f"Staff ({superuser.username})" in html
    assert "System: reconcile" in html
    assert html.count(">Render Farm<") == 3  # the account column, once per job
    only_system = client.get(reverse("admin:provisioning_job_changelist"), {"origin__exact": "reconcile"})
    assert len(only_system.context["cl"].result_list) == 1


def test_jobs_cannot_be_deleted_or_edited_from_the_admin(client, superuser, running):
    job = Job.objects.create(instance=running, account=running.account, action=Job.Action.BOOT)
    client.force_login(superuser)

    listing = client.get(reverse("admin:provisioning_job_changelist")).content.decode()
    assert 'value="delete_selected"' not in listing
    assert client.get(reverse("admin:provisioning_job_delete", args=[job.pk])).status_code == 403
    response = client.post(
        reverse("admin:provisioning_job_changelist"),
        {"action": "delete_selected", "_selected_action": [job.pk], "post": "yes"},
    )
    assert Job.objects.filter(pk=job.pk).exists(), response.status_code
    page = client.get(reverse("admin:provisioning_job_change", args=[job.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    client.post(reverse("admin:provisioning_job_change", args=[job.pk]), {"status": "failed"})
    job.refresh_from_db()
    assert job.status == Job.Status.SCHEDULED


def test_an_admin_power_action_is_the_staffs_job_and_audit_row(client, fleet, running):
    staff = make_staff("provisioning.view_instance", "provisioning.change_instance")
    client.force_login(staff)

    client.post(
        reverse("admin:provisioning_instance_changelist"),
        {"action": "shut_down", "_selected_action": [running.pk]},
    )

    job = running.jobs.get()
    assert (job.action, job.origin, job.actor) == (Job.Action.SHUTDOWN, Origin.STAFF, staff)
    record = AuditRecord.objects.get(action="instance.shutdown", target_id=str(running.pk))
    assert (record.actor, record.origin) == (staff, Origin.STAFF)


def test_the_audit_list_says_who_and_cannot_be_changed(client, superuser, running):
    from accounts.services import audit_record

    audit_record(actor=None, origin=Origin.RECONCILE, action="instance.reconcile", target=running, detail="x")
    audit_record(actor=superuser, action="instance.boot", target=running, detail="job 1")
    client.force_login(superuser)

    html = client.get(reverse("admin:accounts_auditrecord_changelist")).content.decode()

    assert "System: reconcile" in html and f"Staff ({superuser.username})" in html
    record = AuditRecord.objects.first()
    assert client.get(reverse("admin:accounts_auditrecord_delete", args=[record.pk])).status_code == 403
