"""Staff mark a cleaning or quarantined card cleaned in the admin: asks how, calls the service, records."""

import pytest

from accounts.models import AuditRecord
from inventory.counters import gpu_set_state
from inventory.models import GpuDevice, NumaNode
from tests.gpuadmin.conftest import texts
from tests.gpuadmin.test_admin_actions import act, held  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db


def test_mark_cleaned_asks_how_then_puts_the_card_back_on_sale(client, superuser, fleet):
    gpu = GpuDevice.objects.filter(host=fleet.hosts[1]).order_by("pci_address").first()
    node = NumaNode.objects.get(pk=gpu.numa_node_id)
    gpu_set_state(gpu=gpu, state=GpuDevice.State.QUARANTINED, reason="reset failed: unsupported")
    assert NumaNode.objects.get(pk=node.pk).free_gpus == node.free_gpus - 1
    client.force_login(superuser)

    confirm = act(client, "inventory_gpudevice", "mark_cleaned", [gpu])
    assert b'name="reason"' in confirm.content
    response = act(
        client, "inventory_gpudevice", "mark_cleaned", [gpu], confirm="yes", reason="host power-cycled"
    )

    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE
    assert NumaNode.objects.get(pk=node.pk).free_gpus == node.free_gpus
    assert texts(response) == [("success", f"{gpu}: cleaned, available.")]
    record = AuditRecord.objects.get(action="gpu.cleaned")
    assert record.actor == superuser
    assert record.detail == "host power-cycled (was quarantined: reset failed: unsupported)"


def test_a_held_card_is_refused_with_a_message(client, superuser, held):  # noqa: F811
    gpu = GpuDevice.objects.filter(allocations__allocation__instance=held).first()
    GpuDevice.objects.filter(pk=gpu.pk).update(state=GpuDevice.State.QUARANTINED)
    client.force_login(superuser)
    response = act(client, "inventory_gpudevice", "mark_cleaned", [gpu], confirm="yes", reason="fine")
    assert texts(response) == [("error", f"{gpu.pci_address} on {gpu.host} is in use by instance {held.pk}")]
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.QUARANTINED and not AuditRecord.objects.exists()
