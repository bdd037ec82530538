"""Admin actions call the services: power and delete on instances, state on hosts, faulty/in service on
GPUs. A refusal is a message naming the object and the reason, and changes nothing."""

import re

import pytest
from django.urls import reverse

from accounts.models import AuditRecord
from inventory.models import GpuDevice, Host, NumaNode
from provisioning.exceptions import NoCapacity
from provisioning.models import Instance, Job
from provisioning.services import instance_create
from tests.builders import make_allocation, make_instance
from tests.gpuadmin.conftest import make_staff, texts

pytestmark = pytest.mark.django_db


def act(client, model: str, action: str, objects, **extra):
    return client.post(
        reverse(f"admin:{model}_changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects], **extra},
        follow=True,
    )


@pytest.fixture
def held(fleet):
    """An instance holding 2 GPUs (node 0) of the first host, with its create job finished."""
    instance = make_instance(
        plan=fleet.plans[2], region=fleet.region, account=fleet.customer, label="trainer"
    )
    make_allocation(instance=instance, host=fleet.hosts[0], gpus=2, vcpus=16, memory_mib=64 * 1024)
    Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.RUNNING)
    instance.refresh_from_db()
    return instance


# Instances


@pytest.mark.parametrize(
    ("action", "job_action", "status"),
    [
        ("boot", Job.Action.BOOT, Instance.Status.BOOTING),
        ("shut_down", Job.Action.SHUTDOWN, Instance.Status.SHUTTING_DOWN),
        ("reboot", Job.Action.REBOOT, Instance.Status.REBOOTING),
    ],
)
def test_power_actions_start_a_job_per_instance(client, superuser, held, action, job_action, status):
    doing = {"boot": "booting", "shut_down": "shutting down", "reboot": "rebooting"}[action]
    client.force_login(superuser)
    response = act(client, "provisioning_instance", action, [held])
    job = Job.objects.get(instance=held)
    assert (job.action, job.actor) == (job_action, superuser)
    held.refresh_from_db()
    assert held.status == status
    assert texts(response) == [
        (
            "success",
            f"trainer ({held.pk}): {doing} (job {job.pk}).",
        )
    ]


def test_a_busy_instance_is_a_message_and_the_others_go_ahead(client, superuser, fleet, held):
    other = make_instance(plan=fleet.plans[1], region=fleet.region, account=fleet.customer, label="other")
    Job.objects.create(instance=held, account=held.account, action=Job.Action.REBOOT)
    client.force_login(superuser)

    response = act(client, "provisioning_instance", "shut_down", [held, other])

    assert texts(response)[0] == ("error", f"trainer ({held.pk}): Linode busy.")
    assert texts(response)[1][0] == "success"
    held.refresh_from_db()
    assert held.status == Instance.Status.RUNNING and held.jobs.count() == 1
    assert other.jobs.get().action == Job.Action.SHUTDOWN


def test_delete_asks_first_then_calls_the_service(client, superuser, held):
    client.force_login(superuser)

    confirm = act(client, "provisioning_instance", "delete_instances", [held])

    assert b"Yes, delete them" in confirm.content and b"trainer" in confirm.content
    assert not held.jobs.exists()

    response = act(client, "provisioning_instance", "delete_instances", [held], confirm="yes")

    job = held.jobs.get()
    assert job.action == Job.Action.DELETE
    held.refresh_from_db()
    assert held.status == Instance.Status.DELETING
    assert AuditRecord.objects.filter(action="instance.delete", target_id=str(held.pk)).exists()
    assert texts(response) == [("success", f"trainer ({held.pk}): deleting (job {job.pk}).")]


def test_deleting_needs_the_delete_permission_and_djangos_own_delete_is_gone(client, held):
    client.force_login(make_staff("provisioning.view_instance", "provisioning.change_instance"))
    listing = client.get(reverse("admin:provisioning_instance_changelist")).content.decode()
    assert 'value="reboot"' in listing
    assert 'value="delete_instances"' not in listing and 'value="delete_selected"' not in listing
    act(client, "provisioning_instance", "delete_instances", [held], confirm="yes")
    assert not held.jobs.exists()
    assert client.get(reverse("admin:provisioning_instance_delete", args=[held.pk])).status_code == 403


def test_power_actions_need_the_change_permission(client, held):
    client.force_login(make_staff("provisioning.view_instance"))
    act(client, "provisioning_instance", "reboot", [held])
    assert not held.jobs.exists()


def test_the_instance_page_shows_its_allocation_and_jobs_read_only(client, superuser, held, fleet):
    job = Job.objects.create(
        instance=held,
        account=held.account,
        action=Job.Action.CREATE,
        status=Job.Status.FINISHED,
        percent_complete=100,
    )
    client.force_login(superuser)

    response = client.get(reverse("admin:provisioning_instance_change", args=[held.pk]))

    html = response.content.decode()
    gpus = GpuDevice.objects.filter(allocations__allocation__instance=held).select_related("numa_node")
    assert len(gpus) == 2
    for gpu in gpus:
        assert f'<tr class="allocated-gpu"><td>{gpu.pci_address}</td><td>{gpu.numa_node.index}</td>' in html
    cpu_ids = held.allocations.get().cpus.values_list("cpu__cpu_id", flat=True)
    assert "".join(f"<td>{c}</td>" for c in cpu_ids) in html  # vCPU -> host CPU row
    assert "64 GiB (65536 MiB)" in html
    assert reverse("admin:provisioning_job_change", args=[job.pk]) in html and "100%" in html
    assert 'name="_save"' not in html  # nothing to save: changes go through the services
    assert 'name="label"' not in html


# Hosts


def test_drain_asks_for_a_reason_records_it_and_claims_skip_the_host(client, superuser, fleet, held):
    first, second = fleet.hosts
    client.force_login(superuser)

    confirm = act(client, "inventory_host", "drain_hosts", [first])
    assert b'name="reason"' in confirm.content
    assert Host.objects.get(pk=first.pk).state == Host.State.ENABLED

    response = act(client, "inventory_host", "drain_hosts", [first], confirm="yes", reason="BIOS update")

    first.refresh_from_db()
    assert (first.state, first.state_reason) == (Host.State.DRAINING, "BIOS update")
    assert texts(response) == [("success", f"{first.hostname}: draining; 1 instance(s) still on it.")]
    record = AuditRecord.objects.get(action="host.draining")
    assert (record.actor, record.detail) == (superuser, "enabled -> draining: BIOS update")
    # the next 4-GPU claim goes to the other host, then there is nothing left
    for _ in range(2):
        instance = _create(superuser, fleet)
        if instance is None:
            break
        assert instance.host == second
    assert not Instance.objects.filter(host=first).exclude(pk=held.pk).exists()

    response = act(client, "inventory_host", "enable_hosts", [first])
    first.refresh_from_db()
    assert (first.state, first.state_reason) == (Host.State.ENABLED, "")
    assert texts(response) == [("success", f"{first.hostname}: enabled.")]


def _create(user, fleet):
    try:
        return instance_create(
            account=fleet.customer,
            actor=user,
            plan=fleet.plans[4],
            region=fleet.region,
            image=fleet.image,
            root_pass="Correct-Horse-42",
        )
    except NoCapacity:
        return None


@pytest.mark.parametrize(
    ("action", "state"), [("maintenance_hosts", "maintenance"), ("disable_hosts", "disabled")]
)
def test_maintenance_and_disable(client, superuser, fleet, action, state):
    client.force_login(superuser)
    response = act(client, "inventory_host", action, fleet.hosts, confirm="yes", reason="")
    assert set(Host.objects.values_list("state", flat=True)) == {state}
    assert [t for _, t in texts(response)] == sorted(f"{h.hostname}: {state}." for h in fleet.hosts)
    assert AuditRecord.objects.filter(action=f"host.{state}").count() == 2


def test_host_actions_need_the_change_permission(client, fleet):
    client.force_login(make_staff("inventory.view_host"))
    act(client, "inventory_host", "drain_hosts", fleet.hosts, confirm="yes")
    assert set(Host.objects.values_list("state", flat=True)) == {Host.State.ENABLED}
    assert not AuditRecord.objects.exists()


def test_the_host_page_shows_its_topology_and_who_holds_each_gpu(client, superuser, fleet, held):
    client.force_login(superuser)
    html = client.get(reverse("admin:inventory_host_change", args=[fleet.hosts[0].pk])).content.decode()
    assert "NUMA node 0" in html and "NUMA node 1" in html
    held_gpus = set(
        GpuDevice.objects.filter(allocations__allocation__instance=held).values_list("pci_address", flat=True)
    )
    instance_link = reverse("admin:provisioning_instance_change", args=[held.pk])
    for gpu in GpuDevice.objects.filter(host=fleet.hosts[0]):
        row = html.split(f'data-pci="{gpu.pci_address}"')[1].split("</tr>")[0]
        assert (instance_link in row) == (gpu.pci_address in held_gpus)
        assert ("free" in row) == (gpu.pci_address not in held_gpus)
    assert f'pinned to <a href="{instance_link}">trainer ({held.pk})</a> of Render Farm: ' in html
    # Every thread and card the account holds carries its colour, named in the legend.
    account = held.account_id
    legend = re.search(r'id="topology-legend">(.*?)</div>', html, re.S)[1]
    assert f'data-account="{account}"><span class="cell account-0">' in legend and "Render Farm" in legend
    assert len(re.findall(rf'class="cell account-0" data-cpu="\d+" data-account="{account}"', html)) == 16
    assert len(re.findall(rf'class="card account-0" data-account="{account}"', html)) == 2
    assert "reserved for the host: 0-1,48-49" in html
    assert "14 whole cores free" in html and "22 whole cores free" in html
    # state is changed by the actions, not edited in the GPU inline
    assert 'name="gpus-0-state"' not in html and 'name="gpus-0-DELETE"' not in html


# GPUs


def test_mark_faulty_asks_for_a_reason_and_moves_the_counters(client, superuser, fleet):
    gpu = GpuDevice.objects.filter(host=fleet.hosts[1]).order_by("pci_address").first()
    node = NumaNode.objects.get(pk=gpu.numa_node_id)
    client.force_login(superuser)

    confirm = act(client, "inventory_gpudevice", "mark_faulty", [gpu])
    assert b'name="reason"' in confirm.content
    response = act(
        client, "inventory_gpudevice", "mark_faulty", [gpu], confirm="yes", reason="Xid 79, fell off the bus"
    )

    gpu.refresh_from_db()
    assert (gpu.state, gpu.state_reason) == (GpuDevice.State.FAULTY, "Xid 79, fell off the bus")
    assert NumaNode.objects.get(pk=node.pk).free_gpus == node.free_gpus - 1
    assert texts(response) == [("success", f"{gpu}: faulty (Xid 79, fell off the bus).")]
    assert AuditRecord.objects.get(action="gpu.faulty").detail == "Xid 79, fell off the bus"

    response = act(client, "inventory_gpudevice", "return_to_service", [gpu])
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE and gpu.state_reason == ""
    assert NumaNode.objects.get(pk=node.pk).free_gpus == node.free_gpus
    assert texts(response) == [("success", f"{gpu}: available.")]
    assert (
        AuditRecord.objects.get(action="gpu.return_to_service").detail
        == "was faulty: Xid 79, fell off the bus"
    )


def test_an_allocated_gpu_cannot_be_marked_faulty(client, superuser, held):
    gpu = GpuDevice.objects.filter(allocations__allocation__instance=held).first()
    client.force_login(superuser)

    response = act(client, "inventory_gpudevice", "mark_faulty", [gpu], confirm="yes", reason="fan noise")

    assert texts(response) == [("error", f"{gpu.pci_address} on {gpu.host} is in use by instance {held.pk}")]
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE and not AuditRecord.objects.exists()


def test_a_reason_is_required_and_an_available_gpu_is_already_in_service(client, superuser, fleet):
    gpu = GpuDevice.objects.filter(host=fleet.hosts[1]).first()
    client.force_login(superuser)

    response = act(client, "inventory_gpudevice", "mark_faulty", [gpu], confirm="yes", reason="  ")
    assert texts(response)[0][0] == "error" and "Say why the card is faulty" in texts(response)[0][1]

    response = act(client, "inventory_gpudevice", "return_to_service", [gpu])
    assert texts(response) == [("error", f"{gpu.pci_address} on {gpu.host} is already in service.")]
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE and not AuditRecord.objects.exists()


def test_gpu_actions_need_the_change_permission(client, fleet):
    gpu = GpuDevice.objects.filter(host=fleet.hosts[1]).first()
    client.force_login(make_staff("inventory.view_gpudevice"))
    act(client, "inventory_gpudevice", "mark_faulty", [gpu], confirm="yes", reason="fan")
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE and not AuditRecord.objects.exists()


def test_the_gpu_page_does_not_edit_the_state(client, superuser, fleet):
    gpu = GpuDevice.objects.filter(host=fleet.hosts[1]).first()
    client.force_login(superuser)
    html = client.get(reverse("admin:inventory_gpudevice_change", args=[gpu.pk])).content.decode()
    assert 'name="state"' not in html and "Available" in html
