"""GPU hygiene between tenants: a released card is reset before anyone else gets it.

A released card sits in state `cleaning` (the row is the record that work is owed); a task resets it
with libvirt's node-device reset and returns it to service, or quarantines it with the reason.
"""

import logging

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from hypervisor.errors import HypervisorError
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


def gpu_clean(*, gpu_id: int) -> str:
    gpu = GpuDevice.objects.select_related("host").get(pk=gpu_id)
    if gpu.state != GpuDevice.State.CLEANING:
        return f"{gpu}: {gpu.state}, nothing to clean"
    if gpu.allocations.filter(released_at__isnull=True).exists():
        return f"{gpu}: held by an active allocation, left as it is"
    driver = driver_for(gpu.host)
    error = None
    for _ in range(RESET_ATTEMPTS):
        try:
            driver.reset_gpu(gpu)
            error = None
            break
        except HypervisorError as exc:
            error = exc
            if not exc.transient:
                break
    with transaction.atomic():
        gpu = GpuDevice.objects.select_for_update().get(pk=gpu_id)
        if gpu.state != GpuDevice.State.CLEANING:
            return f"{gpu}: became {gpu.state} while it was reset"
        if error is None:
            gpu_set_state(gpu=gpu, state=GpuDevice.State.AVAILABLE, reason="")
            return f"{gpu}: reset, available"
        reason = f"reset failed {timezone.now():%Y-%m-%d %H:%M} UTC: {error}"[:255]
        gpu_set_state(gpu=gpu, state=GpuDevice.State.QUARANTINED, reason=reason)
    logger.warning("%s quarantined: %s", gpu, error)
    return f"{gpu}: quarantined ({error})"
