"""GPU hygiene: a card is resold only once a reset is confirmed; otherwise it is quarantined with the reason.

libvirt's test driver cannot reset a PCI device (it answers "unsupported"). A host declared simulated
(every test-driver host by default) turns that into a simulated reset, recorded as such; the same
driver on a host declared real is exactly a real host whose driver cannot reset the card.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import AuditRecord
from hypervisor import faults
from hypervisor.faults import Step
from hypervisor.profiles import RTX6000_2X2, profile_uri
from inventory.exceptions import GpuBusy, InvalidStateChange
from inventory.models import GpuDevice, Host, NumaNode
from inventory.selectors import region_capacity
from inventory.services import gpu_mark_cleaned
from inventory.sync import host_enroll
from provisioning.gpu_hygiene import gpu_clean, gpu_reset_lease_take
from provisioning.services import instance_delete
from tests.builders import make_gpu_model, make_user, unique
from tests.provisioning.helpers import active_gpus, create

pytestmark = pytest.mark.django_db


def real_host(region) -> Host:
    """The RTX profile on the test driver, declared a real host: its resets answer "unsupported"."""
    make_gpu_model()
    hostname = unique(f"{region.id}-real")
    host, _ = host_enroll(
        region=region,
        hostname=hostname,
        libvirt_uri=profile_uri(RTX6000_2X2, hostname),
        kind=Host.Kind.GPU,
        simulated=False,
    )
    return host


def released_card(*, user, plan, region, image, run_tasks, django_capture_on_commit_callbacks) -> GpuDevice:
    """Create, then delete; the card is cleaning and its reset task has not run yet."""
    instance = run_tasks(create, user=user, plan=plan, region=region, image=image)
    [gpu] = active_gpus(instance)
    with django_capture_on_commit_callbacks() as queued:
        instance_delete(instance=instance, actor=user)
    queued[0]()  # the delete task; the reset it queues is left for the test to run
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.CLEANING
    return gpu


@pytest.fixture
def release(employee, plans, region, image, run_tasks, django_capture_on_commit_callbacks):
    return lambda: released_card(
        user=employee,
        plan=plans[1],
        region=region,
        image=image,
        run_tasks=run_tasks,
        django_capture_on_commit_callbacks=django_capture_on_commit_callbacks,
    )


def free_gpus(gpu: GpuDevice) -> int:
    return NumaNode.objects.get(pk=gpu.numa_node_id).free_gpus


def test_test_driver_hosts_are_simulated_and_real_uris_never_are(gpu_host, region):
    assert gpu_host.simulated is True
    assert real_host(region).simulated is False
    with pytest.raises(IntegrityError), transaction.atomic():
        Host.objects.filter(pk=gpu_host.pk).update(libvirt_uri="qemu+ssh://gpu-01.example/system")


def test_a_simulated_hosts_reset_is_simulated_and_recorded_as_such(gpu_host, release):
    gpu = release()
    before = free_gpus(gpu)
    assert "simulated reset" in gpu_clean(gpu_id=gpu.pk)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE and gpu.reset_lease_expires_at is None
    assert free_gpus(gpu) == before + 1
    record = AuditRecord.objects.get(target_id=str(gpu.pk), action="gpu.reset_simulated")
    assert record.actor is None
    assert "simulated reset (test-driver host, no hardware)" in record.detail
    assert "released by instance" in record.detail


def test_an_unsupported_reset_on_a_real_host_quarantines_the_card(region, employee, plans, image, release):
    real_host(region)
    gpu = release()
    assert not gpu.host.simulated
    before = free_gpus(gpu)
    assert "quarantined" in gpu_clean(gpu_id=gpu.pk)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.QUARANTINED
    assert "cannot reset" in gpu.state_reason and "unsupported" in gpu.state_reason
    assert free_gpus(gpu) == before  # not on sale
    assert AuditRecord.objects.get(target_id=str(gpu.pk), action="gpu.quarantined").detail == gpu.state_reason
    # Running the task again never puts it back on sale.
    gpu_clean(gpu_id=gpu.pk)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.QUARANTINED


def test_capacity_counts_cleaning_and_quarantined_cards(region, release, plans):
    real_host(region)
    quarantined = release()
    gpu_clean(gpu_id=quarantined.pk)
    release()  # a second card, still cleaning
    [summary] = region_capacity(region=region.pk)
    assert (summary.gpus.cleaning, summary.gpus.quarantined) == (1, 1)
    out = StringIO()
    call_command("capacity_report", "--region", region.pk, stdout=out)
    assert "cleaning 1" in out.getvalue() and "quarantined 1" in out.getvalue()


@pytest.mark.parametrize("permanent", [True, False])
def test_a_failed_reset_quarantines_even_on_a_simulated_host(gpu_host, release, permanent):
    gpu = release()
    times = None if permanent else 3  # transient: fails every one of the task's attempts
    faults.inject(Step.RESET, uri=gpu_host.libvirt_uri, permanent=permanent, times=times)
    gpu_clean(gpu_id=gpu.pk)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.QUARANTINED
    assert gpu.state_reason.startswith("reset failed") and "reset failed: injected" in gpu.state_reason


def test_a_transient_reset_error_is_retried(gpu_host, release):
    gpu = release()
    fault = faults.inject(Step.RESET, uri=gpu_host.libvirt_uri, times=2)
    gpu_clean(gpu_id=gpu.pk)
    gpu.refresh_from_db()
    assert (gpu.state, fault.fired) == (GpuDevice.State.AVAILABLE, 2)


def test_a_live_reset_lease_keeps_a_second_worker_out_and_an_expired_one_does_not(gpu_host, release):
    gpu = release()
    assert gpu_reset_lease_take(gpu_id=gpu.pk)  # the first worker, mid-reset
    assert "another worker holds its reset lease" in gpu_clean(gpu_id=gpu.pk)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.CLEANING
    GpuDevice.objects.filter(pk=gpu.pk).update(reset_lease_expires_at=timezone.now() - timedelta(seconds=1))
    gpu_clean(gpu_id=gpu.pk)  # the first worker died: its lease expired
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.AVAILABLE


def test_staff_mark_a_quarantined_card_cleaned_and_it_is_recorded(region, release):
    real_host(region)
    gpu = release()
    gpu_clean(gpu_id=gpu.pk)
    staff = make_user(username="ops")
    with pytest.raises(InvalidStateChange, match="Say how the card was cleaned"):
        gpu_mark_cleaned(gpu=gpu, note=" ", actor=staff)
    gpu_mark_cleaned(gpu=gpu, note="host power-cycled, nvidia-smi clean", actor=staff)
    gpu.refresh_from_db()
    assert (gpu.state, gpu.state_reason) == (GpuDevice.State.AVAILABLE, "")
    record = AuditRecord.objects.get(action="gpu.cleaned")
    assert record.actor == staff and record.target_id == str(gpu.pk)
    assert record.detail.startswith("host power-cycled, nvidia-smi clean (was quarantined: reset failed")
    with pytest.raises(InvalidStateChange, match="is available: only a card that is cleaning or quarantined"):
        gpu_mark_cleaned(gpu=gpu, note="again", actor=staff)


def test_a_held_card_cannot_be_marked_cleaned(gpu_host, employee, plans, region, image, run_tasks):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    [gpu] = active_gpus(instance)
    GpuDevice.objects.filter(pk=gpu.pk).update(state=GpuDevice.State.QUARANTINED, state_reason="shared group")
    with pytest.raises(GpuBusy, match=f"in use by instance {instance.pk}"):
        gpu_mark_cleaned(gpu=gpu, note="looks fine", actor=employee)
    gpu.refresh_from_db()
    assert gpu.state == GpuDevice.State.QUARANTINED
    assert not AuditRecord.objects.filter(action="gpu.cleaned").exists()
