"""Writes of the project package itself."""

import os
import socket

from django.utils import timezone

from gpuadmin.models import WorkerHeartbeat

HEARTBEAT = "workers"


def heartbeat_record() -> WorkerHeartbeat:
    beat, _ = WorkerHeartbeat.objects.update_or_create(
        name=HEARTBEAT,
        defaults={"beat_at": timezone.now(), "worker": f"{socket.gethostname()} pid {os.getpid()}"},
    )
    return beat


def task_results_prune(*, keep: int) -> int:
    """Delete the successful task results older than the newest `keep` (failures stay). Scheduled with
    the heartbeat, so the queue's own save of each result stays one insert: django-q2's save_limit locks
    and counts every kept result at every save (32 ms of the monitor's CPU per task at 1,000 kept)."""
    from django_q.models import Success

    cutoff = Success.objects.order_by("-stopped").values_list("stopped", flat=True)[keep : keep + 1].first()
    if cutoff is None:
        return 0
    deleted, _ = Success.objects.filter(stopped__lte=cutoff).delete()
    return deleted
