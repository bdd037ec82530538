"""GPU hygiene between tenants: a released card is resold only once something confirmed it clean.

A released card sits in state `cleaning` (the row is the record that work is owed). A task resets
every PCI function of it with libvirt's node-device reset, holding a lease on the card while it does
(a second worker sees the live lease and leaves). Then:

- the reset succeeded: `available`;
- the host is simulated (libvirt's test driver, which has no hardware and cannot reset): `available`,
  and the audit log says the reset was simulated;
- the reset failed, or the host's driver cannot reset the card: `quarantined` with the reason, until
  staff mark it cleaned (`inventory.services.gpu_mark_cleaned`). Never back on sale silently.

Every outcome is an audit row on the card. A worker killed mid-reset leaves the card `cleaning` with
an expired lease; the job sweep (provisioning.leases) queues the reset again.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from accounts.services import audit_record
from hypervisor.errors import HypervisorError
from hypervisor.lifecycle import Outcome
from inventory.counters import gpu_set_state
from inventory.models import GpuDevice
from provisioning.claims import allocation_release
from provisioning.driver import driver_for
from provisioning.models import Allocation

logger = logging.getLogger(__name__)

TASK = "provisioning.tasks.clean_gpu"
RESET_ATTEMPTS = 3


def allocation_release_and_clean(*, allocation: Allocation) -> None:
    """Release an allocation and queue the reset of the cards it gave back (they are `cleaning` now)."""
    with transaction.atomic():
        gpu_ids = list(allocation.gpus.values_list("gpu_id", flat=True))
        allocation_release(allocation=allocation)
        gpus_enqueue_cleaning(gpu_ids=gpu_ids)


def gpus_enqueue_cleaning(*, gpu_ids: list[int]) -> None:
    for gpu_id in gpu_ids:
        transaction.on_commit(lambda gpu_id=gpu_id: async_task(TASK, gpu_id, task_name=f"clean-gpu-{gpu_id}"))


def gpu_reset_lease_take(*, gpu_id: int) -> bool:
    """Take the card's reset lease; False when it is not cleaning or another worker holds a live lease."""
    now = timezone.now()
    return bool(
        GpuDevice.objects.filter(pk=gpu_id, state=GpuDevice.State.CLEANING)
        .filter(Q(reset_lease_expires_at__isnull=True) | Q(reset_lease_expires_at__lt=now))
        .update(reset_lease_expires_at=now + timedelta(seconds=settings.GPUADMIN_JOB_LEASE_SECONDS))
    )


def gpu_clean(*, gpu_id: int) -> str:
    gpu = GpuDevice.objects.select_related("host").get(pk=gpu_id)
    if gpu.state != GpuDevice.State.CLEANING:
        return f"{gpu}: {gpu.state}, nothing to clean"
    if gpu.allocations.filter(released_at__isnull=True).exists():
        return f"{gpu}: held by an active allocation, left as it is"
    if not gpu_reset_lease_take(gpu_id=gpu_id):
        return f"{gpu}: another worker holds its reset lease, left to it"
    simulated, error = _reset(gpu)
    with transaction.atomic():
        gpu = GpuDevice.objects.select_for_update().select_related("host").get(pk=gpu_id)
        GpuDevice.objects.filter(pk=gpu_id).update(reset_lease_expires_at=None)
        if gpu.state != GpuDevice.State.CLEANING:
            return f"{gpu}: became {gpu.state} while it was reset"
        previous = gpu.state_reason
        if error is None:
            how = "simulated reset (test-driver host, no hardware)" if simulated else "reset"
            gpu_set_state(gpu=gpu, state=GpuDevice.State.AVAILABLE, reason="")
            audit_record(
                actor=None,
                action="gpu.reset_simulated" if simulated else "gpu.reset",
                target=gpu,
                detail=f"{how}; {previous}" if previous else how,
            )
            return f"{gpu}: {how}, available"
        reason = f"reset failed {timezone.now():%Y-%m-%d %H:%M} UTC: {error}"[:255]
        gpu_set_state(gpu=gpu, state=GpuDevice.State.QUARANTINED, reason=reason)
        audit_record(actor=None, action="gpu.quarantined", target=gpu, detail=reason)
    logger.warning("%s quarantined: %s", gpu, error)
    return f"{gpu}: quarantined ({error})"


def _reset(gpu: GpuDevice) -> tuple[bool, str | None]:
    """Reset every function of the card: (simulated, None) when done, (False, why) when not confirmed."""
    driver = driver_for(gpu.host)
    error: str | None = None
    for _ in range(RESET_ATTEMPTS):
        try:
            outcomes = driver.reset_gpu(gpu)
        except HypervisorError as exc:
            error = str(exc)
            if not exc.transient:
                return False, error
            continue
        unsupported = [
            function
            for function, outcome in zip(gpu.functions, outcomes, strict=True)
            if outcome == Outcome.UNSUPPORTED
        ]
        if not unsupported:
            return False, None
        if gpu.host.simulated:
            return True, None
        return False, (
            f"the host's libvirt cannot reset {', '.join(unsupported)} (unsupported); "
            "clean the card by hand and mark it cleaned"
        )
    return False, error
