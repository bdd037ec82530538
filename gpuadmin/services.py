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
