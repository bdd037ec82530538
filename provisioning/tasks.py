"""django-q2 entry points. Each loads rows by id and calls one service; each is safe to run twice."""

from provisioning import gpu_hygiene, reconcile, workflows


def run_job(job_id: int) -> str:
    return workflows.job_run(job_id=job_id)


def clean_gpu(gpu_id: int) -> str:
    return gpu_hygiene.gpu_clean(gpu_id=gpu_id)


def reconcile_all() -> str:
    reports = reconcile.reconcile_hosts()
    resumed = reconcile.jobs_resume()
    findings = sum(len(r.repaired) + len(r.problems) + bool(r.error) for r in reports)
    return f"reconciled {len(reports)} hosts: {findings} findings, {resumed} jobs resumed"


def sweep_jobs() -> str:
    """Scheduled every minute: jobs whose worker died, and cards left cleaning, are queued again."""
    resumed = reconcile.jobs_resume()
    return f"{resumed} jobs resumed"
