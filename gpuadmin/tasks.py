"""django-q2 entry points of the project package."""

from gpuadmin.services import heartbeat_record


def heartbeat() -> str:
    beat = heartbeat_record()
    return f"heartbeat {beat.beat_at.isoformat()} by {beat.worker}"
