"""kill -9 a worker cluster in the middle of a create and of a delete: a second cluster's scheduled
sweep finds the expired leases and both jobs converge, each finished exactly once, within 90 s.

Real processes on PostgreSQL and the database broker: cluster A is slowed at known steps through the
fault hooks (GPUADMIN_FAULTS: define and undefine wait 10 minutes), so the kill lands mid-job; cluster B
has no fault. libvirt's test driver keeps its state per process, so B builds the create's domain
afresh and finds nothing left to remove for the delete: both converge from where B's host is.
"""

import logging
import os
import time

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule, Task

from benchmarks.cluster import WorkerClusters, database_url, project_env
from inventory.counters import numa_counters_recount
from inventory.models import GpuDevice, Host
from provisioning.models import Allocation, Instance, Job
from provisioning.services import instance_delete
from tests.builders import make_gpu_plan, make_image
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.helpers import create

logger = logging.getLogger(__name__)
SLOW_STEPS = '[{"step": "define", "delay": 600}, {"step": "undefine", "delay": 600}]'
CONVERGE_SECONDS = 90


def wait_until(predicate, seconds: float, clusters: list[WorkerClusters]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        assert all(c.alive() for c in clusters), "a cluster that should run died"
        time.sleep(0.25)
    return predicate()


def leased_by(job: Job, cluster: WorkerClusters) -> bool:
    job.refresh_from_db()
    if job.status != Job.Status.STARTED or not job.lease_owner:
        return False
    pid = int(job.lease_owner.split(":")[1])
    try:
        return os.getpgid(pid) == cluster.processes[0].pid
    except ProcessLookupError:
        return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_kill_9_mid_create_and_mid_delete_both_converge(region, employee, tmp_path, monkeypatch):
    for _ in range(2):
        enroll_rtx_host(region)
    plan, image = make_gpu_plan(1), make_image()
    Schedule.objects.get_or_create(
        func="provisioning.tasks.sweep_jobs",
        defaults={"name": "sweep", "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1},
    )
    doomed = create(user=employee, plan=plan, region=region, image=image)  # runs inline: running
    doomed_gpus = [row.gpu_id for row in Allocation.objects.get(instance=doomed).gpus.all()]

    monkeypatch.setattr(Conf, "SYNC", False)  # from here on the jobs go to the database broker
    creating = create(user=employee, plan=plan, region=region, image=image)
    create_job = creating.jobs.get()
    delete_job = instance_delete(instance=doomed, actor=employee)

    env = project_env(
        DATABASE_URL=database_url(connection.settings_dict),
        GPUADMIN_SECRET_KEY=settings.SECRET_KEY,  # the broker's packages are signed with it
        GPUADMIN_Q_NAME=Conf.PREFIX,
        GPUADMIN_LOG_LEVEL="INFO",
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with WorkerClusters(count=1, env={**env, "GPUADMIN_FAULTS": SLOW_STEPS}, log_dir=tmp_path / "a") as a:
        in_the_middle = wait_until(
            # The create stuck in its define: the last step it finished is the seed.
            lambda: leased_by(create_job, a) and create_job.step == "seed" and leased_by(delete_job, a),
            60,
            [a],
        )
        assert in_the_middle, (create_job.status, create_job.step, delete_job.status)
        with WorkerClusters(count=1, env=env, log_dir=tmp_path / "b") as b:
            a.kill()
            killed_at = time.monotonic()
            lease_left = max(create_job.lease_expires_at, delete_job.lease_expires_at) - timezone.now()

            def converged() -> bool:
                creating.refresh_from_db()
                doomed.refresh_from_db()
                cleaning = GpuDevice.objects.filter(pk__in=doomed_gpus, state=GpuDevice.State.CLEANING)
                return (
                    creating.status == Instance.Status.RUNNING
                    and doomed.status == Instance.Status.DELETED
                    and not cleaning.exists()
                )

            assert wait_until(converged, CONVERGE_SECONDS, [b]), (creating.status, doomed.status)
            took = time.monotonic() - killed_at
    logger.warning("converged %.1f s after kill -9; the leases had %s left at the kill", took, lease_left)

    create_job.refresh_from_db()
    delete_job.refresh_from_db()
    assert (create_job.status, delete_job.status) == (Job.Status.FINISHED, Job.Status.FINISHED)
    assert create_job.attempts == 2 and delete_job.attempts == 2  # A's run, then B's
    # Allocation right: the create holds one active allocation of one card; the delete holds none.
    [held] = Allocation.objects.filter(instance=creating, released_at__isnull=True)
    assert held.gpus.count() == 1
    assert not Allocation.objects.filter(instance=doomed, released_at__isnull=True).exists()
    assert set(GpuDevice.objects.filter(pk__in=doomed_gpus).values_list("state", flat=True)) == {"available"}
    assert all(numa_counters_recount(host=host) == [] for host in Host.objects.all())  # no counter drift
    # Finished exactly once: one run of each ended "finished" (any other run found it held or done).
    results = list(Task.objects.filter(func="provisioning.tasks.run_job").values_list("result", flat=True))
    for job in (create_job, delete_job):
        assert results.count(f"job {job.pk} finished") == 1, results
    a_log = (tmp_path / "a" / "cluster-0.log").read_text()
    assert "Processed 'provisioning.tasks.run_job'" not in a_log
