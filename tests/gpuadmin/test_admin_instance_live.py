"""The live instance page: its panel (status, last job and progress, reason, address, host), the JSON it
polls, and its buttons, each calling the service the API calls and leaving the service's audit row."""

import pytest
from django.urls import reverse

from accounts.models import AuditRecord, Origin
from hypervisor import faults
from hypervisor.faults import Step
from provisioning.models import Allocation, Instance, Job
from provisioning.services import instance_create, job_retry
from tests.gpuadmin.conftest import make_staff, texts

pytestmark = pytest.mark.django_db


@pytest.fixture
def spin_up(fleet, superuser, django_capture_on_commit_callbacks):
    """Create a GPU Linode for the fleet's customer and run its create job, as a worker would."""

    def create(gpus: int = 1, *, run: bool = True) -> Instance:
        with django_capture_on_commit_callbacks(execute=run):
            instance = instance_create(
                account=fleet.customer,
                actor=superuser,
                plan=fleet.plans[gpus],
                region=fleet.region,
                image=fleet.image,
                root_pass="Correct-Horse-42",
                origin=Origin.STAFF,
            )
        instance.refresh_from_db()
        return instance

    return create


def page(client, instance) -> str:
    return client.get(reverse("admin:provisioning_instance_change", args=[instance.pk])).content.decode()


def live(client, instance) -> dict:
    response = client.get(reverse("admin:provisioning_instance_live", args=[instance.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    return response.json()


def act(client, instance, action: str, **data):
    return client.post(
        reverse("admin:provisioning_instance_act", args=[instance.pk, action]), data, follow=True
    )


def test_a_job_in_flight_shows_its_progress_and_the_page_polls_until_it_ends(client, superuser, spin_up):
    instance = spin_up(run=False)
    client.force_login(superuser)
    html = page(client, instance)
    assert 'data-in-flight="true"' in html and "gpuadmin/instance_live.js" in html
    assert 'id="instance-status" data-status="provisioning">Provisioning<' in html
    assert f"Create #{instance.jobs.get().pk}: scheduled" in html
    assert f'<td id="instance-address">{instance.ipv4[0]}</td>' in html
    state = live(client, instance)
    assert (state["status"], state["in_flight"], state["job"]["status"], state["job"]["percent"]) == (
        "provisioning",
        True,
        "scheduled",
        0,
    )
    assert state["actions"] == ["delete"]  # a delete is accepted in any state; nothing else in flight
    assert state["ipv4"] == instance.ipv4 and state["host"] == instance.host.hostname

    from provisioning.workflows import job_run

    job_run(job_id=instance.jobs.get().pk)
    state = live(client, instance)
    assert (state["status"], state["in_flight"], state["job"]["status"], state["job"]["percent"]) == (
        "running",
        False,
        "finished",
        100,
    )
    assert state["actions"] == ["shutdown", "reboot", "resize", "delete"]
    assert 'data-in-flight="false"' in page(client, instance)


@pytest.mark.parametrize(
    ("action", "job_action", "audit", "doing"),
    [
        ("shutdown", Job.Action.SHUTDOWN, "instance.shutdown", "shutting down"),
        ("reboot", Job.Action.REBOOT, "instance.reboot", "rebooting"),
    ],
)
def test_the_power_buttons_call_the_services_and_are_audited(
    client, superuser, spin_up, action, job_action, audit, doing
):
    instance = spin_up()
    client.force_login(superuser)
    response = act(client, instance, action)
    job = instance.jobs.order_by("-id").first()
    assert (job.action, job.actor, job.origin) == (job_action, superuser, Origin.STAFF)
    assert texts(response) == [("success", f"{instance}: {doing} (job {job.pk}).")]
    assert response.redirect_chain[-1][0] == reverse("admin:provisioning_instance_change", args=[instance.pk])
    record = AuditRecord.objects.filter(action=audit).get()
    assert (record.actor, record.origin, record.target_id) == (superuser, Origin.STAFF, str(instance.pk))


def test_boot_an_offline_instance_from_its_page(
    client, superuser, spin_up, django_capture_on_commit_callbacks
):
    instance = spin_up()
    client.force_login(superuser)
    with django_capture_on_commit_callbacks(execute=True):
        act(client, instance, "shutdown")
    assert live(client, instance)["actions"] == ["boot", "resize", "delete"]
    with django_capture_on_commit_callbacks(execute=True):
        response = act(client, instance, "boot")
    assert texts(response)[0][0] == "success"
    assert live(client, instance)["status"] == "running"
    assert AuditRecord.objects.filter(action="instance.boot", actor=superuser).exists()


def test_a_button_the_state_does_not_allow_is_refused_with_the_services_words(client, superuser, spin_up):
    instance = spin_up(run=False)
    client.force_login(superuser)
    response = act(client, instance, "reboot")
    assert texts(response) == [("error", f"{instance}: Linode busy.")]
    assert instance.jobs.count() == 1


def test_resize_asks_for_the_plan_then_resizes(client, superuser, spin_up):
    instance = spin_up(1)
    client.force_login(superuser)
    form = client.get(
        reverse("admin:provisioning_instance_act", args=[instance.pk, "resize"])
    ).content.decode()
    assert '<option value="g1-gpu-rtx6000-2">' in form and '<option value="g1-gpu-rtx6000-1">' not in form
    response = act(client, instance, "resize", plan="g1-gpu-rtx6000-2")
    job = instance.jobs.order_by("-id").first()
    assert (job.action, job.params["to"]) == (Job.Action.RESIZE, "g1-gpu-rtx6000-2")
    assert texts(response) == [("success", f"{instance}: resizing to g1-gpu-rtx6000-2 (job {job.pk}).")]
    assert AuditRecord.objects.filter(action="instance.resize", actor=superuser).exists()
    refused = act(client, spin_up(1), "resize", plan="no-such-plan")
    assert texts(refused)[0][1].endswith("Choose one of the plans offered.")


def test_delete_asks_then_deletes(client, superuser, spin_up):
    instance = spin_up()
    client.force_login(superuser)
    confirm = client.get(reverse("admin:provisioning_instance_act", args=[instance.pk, "delete"]))
    assert "Yes, delete it" in confirm.content.decode()
    assert not instance.jobs.filter(action=Job.Action.DELETE).exists()  # a GET deletes nothing
    response = act(client, instance, "delete")
    job = instance.jobs.get(action=Job.Action.DELETE)
    assert texts(response) == [("success", f"{instance}: deleting (job {job.pk}).")]
    assert AuditRecord.objects.filter(action="instance.delete", actor=superuser).exists()


def test_a_failed_create_shows_its_reason_and_retry_claims_again(
    client, superuser, spin_up, fleet, django_capture_on_commit_callbacks
):
    with faults.injected(Step.DEFINE, uri=fleet.hosts[0].libvirt_uri, permanent=True, times=None):
        instance = spin_up()
    assert instance.status == Instance.Status.FAILED
    assert not Allocation.objects.filter(instance=instance, released_at__isnull=True).exists()
    client.force_login(superuser)
    html = page(client, instance)
    assert 'id="instance-status" data-status="failed">Failed<' in html
    assert "create failed:" in html  # the reason, and the job's error
    state = live(client, instance)
    assert state["actions"] == ["delete", "retry"] and state["job"]["error"]

    with django_capture_on_commit_callbacks(execute=True):
        response = act(client, instance, "retry")
    failed = instance.jobs.order_by("id").first()
    retry = instance.jobs.order_by("-id").first()
    assert texts(response) == [
        ("success", f"{instance}: retrying its failed create job {failed.pk} (job {retry.pk}).")
    ]
    state = live(client, instance)
    assert (state["status"], state["status_reason"], state["job"]["status"]) == ("running", "", "finished")
    assert Allocation.objects.filter(instance=instance, released_at__isnull=True).count() == 1
    record = AuditRecord.objects.get(action="instance.create", detail__startswith="retry")
    assert record.detail.startswith(f"retry of job {failed.pk}: g1-gpu-rtx6000-1 in us-east (job {retry.pk})")
    assert record.actor == superuser


def test_only_the_last_failed_job_is_retried(superuser, spin_up):
    from provisioning.exceptions import InvalidRequest

    instance = spin_up()
    with pytest.raises(InvalidRequest, match="only when it failed"):
        job_retry(job=instance.jobs.get(), actor=superuser)


def test_a_failed_power_job_is_retried_through_its_service(
    superuser, spin_up, fleet, django_capture_on_commit_callbacks
):
    from provisioning.services import instance_shutdown

    instance = spin_up()
    with (
        faults.injected(Step.SHUTDOWN, uri=fleet.hosts[0].libvirt_uri, permanent=True, times=None),
        django_capture_on_commit_callbacks(execute=True),
    ):
        failed = instance_shutdown(instance=instance, actor=superuser)
    failed.refresh_from_db()
    assert failed.status == Job.Status.FAILED
    with django_capture_on_commit_callbacks(execute=True):
        retry = job_retry(job=failed, actor=superuser, origin=Origin.STAFF)
    retry.refresh_from_db()
    instance.refresh_from_db()
    assert (retry.action, retry.status, instance.status) == (Job.Action.SHUTDOWN, "finished", "offline")


def test_view_only_staff_see_the_panel_without_buttons_and_cannot_act(client, spin_up):
    instance = spin_up()
    viewer = make_staff("provisioning.view_instance")
    client.force_login(viewer)
    assert live(client, instance)["actions"] == []
    html = page(client, instance)
    assert 'class="live-action" data-action="shutdown" hidden' in html
    for action in ("boot", "shutdown", "reboot", "resize", "delete", "retry"):
        response = client.post(reverse("admin:provisioning_instance_act", args=[instance.pk, action]))
        assert response.status_code == 403, action
    assert instance.jobs.count() == 1


def test_change_but_not_delete_permission_gets_every_button_but_delete(client, spin_up):
    instance = spin_up()
    operator = make_staff("provisioning.view_instance", "provisioning.change_instance")
    client.force_login(operator)
    assert live(client, instance)["actions"] == ["shutdown", "reboot", "resize"]
    assert (
        client.post(reverse("admin:provisioning_instance_act", args=[instance.pk, "delete"])).status_code
        == 403
    )


def test_the_live_view_needs_view_permission_and_a_real_instance(client, spin_up, superuser):
    instance = spin_up()
    client.force_login(make_staff())
    assert client.get(reverse("admin:provisioning_instance_live", args=[instance.pk])).status_code == 403
    client.force_login(superuser)
    assert client.get(reverse("admin:provisioning_instance_live", args=[instance.pk + 99])).status_code == 404
    unknown = client.post(reverse("admin:provisioning_instance_act", args=[instance.pk, "explode"]))
    assert unknown.status_code == 404
