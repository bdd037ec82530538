"""Admin edits go through the services: what discovery and claims own on a card or a host is read-only,
a card leaves only by the "retire" action (refused for a held card), and a host's region, kind and URI
change only through host_change, refused while it holds allocations. After every change the counters
are exact (a recount finds nothing to fix) and the host's generation moved on.

On the issue's main a GPU could be deleted, or have its node, model or IOMMU group edited, from its
change form with no recount and no generation bump (a deleted card left its node's counters stale),
and a host's kind, region and URI were editable while it held allocations.
"""

import pytest
from django.urls import reverse

from accounts.models import AuditRecord
from inventory.counters import numa_counters_recount
from inventory.models import GpuDevice, Host, NumaNode
from tests.builders import make_region
from tests.gpuadmin.conftest import make_staff, texts
from tests.gpuadmin.test_admin_actions import act, held  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def counters_exact(host: Host) -> bool:
    """What the claims trust: the nodes' counters as a full recount from the rows would write them."""
    return numa_counters_recount(host=host) == []


def generation(host: Host) -> int:
    return Host.objects.get(pk=host.pk).generation


def gpu_form(gpu: GpuDevice, **changes) -> dict:
    data = {
        "host": gpu.host_id, "pci_address": gpu.pci_address, "model": gpu.model_id,
        "numa_node": gpu.numa_node_id, "iommu_group": gpu.iommu_group,
        "companion_functions": "[]", "foreign_functions": "[]",
    }  # fmt: skip
    return {**data, **changes}


def test_a_card_edited_from_its_form_keeps_what_discovery_found(client, superuser, fleet):
    host = fleet.hosts[1]
    gpu = GpuDevice.objects.filter(host=host).order_by("pci_address").first()
    other_node = NumaNode.objects.filter(host=host).exclude(pk=gpu.numa_node_id).first()
    before = GpuDevice.objects.values().get(pk=gpu.pk)
    client.force_login(superuser)
    page = client.get(reverse("admin:inventory_gpudevice_change", args=[gpu.pk])).content.decode()
    for field in ("host", "pci_address", "model", "numa_node", "iommu_group", "companion_functions"):
        assert f'name="{field}"' not in page
    client.post(
        reverse("admin:inventory_gpudevice_change", args=[gpu.pk]),
        gpu_form(gpu, numa_node=other_node.pk, iommu_group=999, pci_address="0000:ff:00.0"),
    )
    assert GpuDevice.objects.values().get(pk=gpu.pk) == before
    assert counters_exact(host)


def test_a_card_cannot_be_added_or_deleted_from_the_admin(client, superuser, fleet):
    gpu = GpuDevice.objects.filter(host=fleet.hosts[1]).first()
    node = NumaNode.objects.get(pk=gpu.numa_node_id)
    client.force_login(superuser)
    assert client.get(reverse("admin:inventory_gpudevice_add")).status_code == 403
    assert (
        client.post(reverse("admin:inventory_gpudevice_delete", args=[gpu.pk]), {"post": "yes"}).status_code
        == 403
    )
    act(client, "inventory_gpudevice", "delete_selected", [gpu], post="yes")
    assert GpuDevice.objects.filter(pk=gpu.pk).exists()
    assert NumaNode.objects.get(pk=node.pk).free_gpus == node.free_gpus
    assert counters_exact(fleet.hosts[1])


def test_retiring_a_free_card_takes_it_out_of_the_counters_for_good(client, superuser, fleet):
    host = fleet.hosts[1]
    gpu = GpuDevice.objects.filter(host=host).order_by("pci_address").first()
    node = NumaNode.objects.get(pk=gpu.numa_node_id)
    was = generation(host)
    client.force_login(superuser)

    confirm = act(client, "inventory_gpudevice", "retire_gpus", [gpu])
    assert b'name="reason"' in confirm.content
    response = act(client, "inventory_gpudevice", "retire_gpus", [gpu], confirm="yes", reason="RMA 4411")

    gpu.refresh_from_db()
    assert (gpu.state, gpu.state_reason) == (GpuDevice.State.REMOVED, "retired: RMA 4411")
    assert texts(response) == [("success", f"{gpu}: retired (RMA 4411).")]
    assert NumaNode.objects.get(pk=node.pk).free_gpus == node.free_gpus - 1
    assert generation(host) > was
    assert counters_exact(host)
    assert AuditRecord.objects.get(action="gpu.retire").detail == "RMA 4411 (was available)"
    # And it cannot be put back on sale by hand.
    response = act(client, "inventory_gpudevice", "return_to_service", [gpu])
    assert texts(response)[0][0] == "error"


def test_a_held_card_cannot_be_retired(client, superuser, held):  # noqa: F811
    gpu = GpuDevice.objects.filter(allocations__allocation__instance=held).first()
    was = generation(gpu.host)
    client.force_login(superuser)
    response = act(client, "inventory_gpudevice", "retire_gpus", [gpu], confirm="yes", reason="RMA")
    assert texts(response) == [("error", f"{gpu.pci_address} on {gpu.host} is in use by instance {held.pk}")]
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE and generation(gpu.host) == was
    assert not AuditRecord.objects.filter(action="gpu.retire").exists()
    assert counters_exact(gpu.host)


def test_retiring_needs_the_change_permission(client, fleet):
    gpu = GpuDevice.objects.filter(host=fleet.hosts[1]).first()
    client.force_login(make_staff("inventory.view_gpudevice"))
    act(client, "inventory_gpudevice", "retire_gpus", [gpu], confirm="yes", reason="RMA")
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE


def host_form(host: Host, **changes) -> dict:
    data = {
        "region": host.region_id, "libvirt_uri": host.libvirt_uri, "kind": host.kind,
        "profile": host.profile, "storage_pool": host.storage_pool, "bridge": host.bridge,
        # the inlines' management forms (nodes and cards are read-only rows)
        "numa_nodes-TOTAL_FORMS": "0", "numa_nodes-INITIAL_FORMS": "0",
        "gpus-TOTAL_FORMS": "0", "gpus-INITIAL_FORMS": "0",
    }  # fmt: skip
    return {**data, **changes}


def post_host(client, host: Host, **changes):
    page = client.get(reverse("admin:inventory_host_change", args=[host.pk]))
    data = host_form(host, **changes)
    for formset in page.context["inline_admin_formsets"]:
        prefix = formset.formset.prefix
        data[f"{prefix}-TOTAL_FORMS"] = str(formset.formset.total_form_count())
        data[f"{prefix}-INITIAL_FORMS"] = str(formset.formset.initial_form_count())
        for index, form in enumerate(formset.formset.forms):
            data[f"{prefix}-{index}-id"] = str(form.instance.pk)
            data[f"{prefix}-{index}-host"] = str(host.pk)
    return client.post(reverse("admin:inventory_host_change", args=[host.pk]), data)


def test_a_host_holding_allocations_keeps_its_region_kind_and_uri(client, superuser, held, fleet):  # noqa: F811
    host = fleet.hosts[0]
    before = Host.objects.values().get(pk=host.pk)
    elsewhere = make_region("us-west", "Fremont, CA")
    client.force_login(superuser)
    for change in ({"region": elsewhere.pk}, {"kind": Host.Kind.STANDARD}, {"libvirt_uri": "test:///other"}):
        response = post_host(client, host, **change)
        assert response.status_code == 200, change  # the form again, saying why
        errors = response.context["adminform"].form.non_field_errors()
        assert "holds 1 active allocation(s)" in errors[0], errors
        assert Host.objects.values().get(pk=host.pk) == before
    assert counters_exact(host)
    assert not AuditRecord.objects.filter(action="host.change").exists()


def test_a_free_host_changes_region_and_kind_through_the_service(client, superuser, fleet):
    host = fleet.hosts[1]
    was = generation(host)
    elsewhere = make_region("us-west", "Fremont, CA")
    client.force_login(superuser)
    page = client.get(reverse("admin:inventory_host_change", args=[host.pk])).content.decode()
    assert 'name="hostname"' not in page  # set at enrollment
    response = post_host(client, host, region=elsewhere.pk, kind=Host.Kind.STANDARD)
    assert response.status_code == 302, response.context["adminform"].form.errors
    host.refresh_from_db()
    assert (host.region_id, host.kind) == ("us-west", Host.Kind.STANDARD)
    assert host.generation > was
    assert counters_exact(host)
    record = AuditRecord.objects.get(action="host.change")
    assert record.detail.startswith("kind gpu -> standard; region ") and "us-west" in record.detail
    assert record.actor == superuser


def test_a_uri_cannot_switch_between_the_test_driver_and_a_real_one(client, superuser, fleet):
    host = fleet.hosts[1]
    client.force_login(superuser)
    response = post_host(client, host, libvirt_uri="qemu+ssh://root@gpu-9/system")
    assert response.status_code == 200
    assert "enroll it again" in response.context["adminform"].form.non_field_errors()[0]
    assert Host.objects.get(pk=host.pk).libvirt_uri == host.libvirt_uri
