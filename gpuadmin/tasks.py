"""django-q2 entry points of the project package."""

from django.conf import settings

from gpuadmin.services import heartbeat_record, task_results_prune


def heartbeat() -> str:
    """Every minute: the workers' heartbeat, and the task results beyond the kept ones pruned."""
    beat = heartbeat_record()
    pruned = task_results_prune(keep=settings.GPUADMIN_Q_RESULTS_KEPT)
    return f"heartbeat {beat.beat_at.isoformat()} by {beat.worker}; {pruned} old task results pruned"
