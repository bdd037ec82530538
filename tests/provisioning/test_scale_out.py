"""Scale-out: two gunicorn servers and two django-q2 clusters on one PostgreSQL and one Redis.

Instances are created through both servers and deleted through the other one (HTTP, tokens); every job
must run exactly once (django-q's task records and the clusters' logs), both clusters must have taken
work, and afterwards every invariant holds (provisioning.audit: no double allocation, no leaked GPU,
CPU or address, counters equal to a recount, every job finished, every domain as its allocation says).
The hosts are simulated; the hypervisor service lets the four worker processes share them.
"""

import re
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django_q.models import Task

from accounts.services import api_token_create
from benchmarks.cluster import database_url, project_env
from benchmarks.stack import Api, Deployment, wait_until
from inventory.models import GpuDevice
from provisioning.audit import fleet_violations
from provisioning.models import Instance, Job
from tests.builders import make_gpu_plan, make_image
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.test_worker_clusters import REDIS_URL, redis_or_skip

INSTANCES = 12  # three hosts of four cards


def deployment_env() -> dict[str, str]:
    """What every server and cluster process is started with (Deployment adds the service's socket)."""
    return project_env(
        DATABASE_URL=database_url(connection.settings_dict),
        GPUADMIN_REDIS_URL=REDIS_URL,
        GPUADMIN_Q_NAME=f"gpuadmin-test-{uuid.uuid4().hex[:8]}",
        GPUADMIN_ALLOWED_HOSTS="127.0.0.1,localhost",
        GPUADMIN_API_RATE_REQUESTS="1000000",
        GPUADMIN_API_RATE_CREATES="1000000",
        GPUADMIN_LOG_LEVEL="INFO",
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_servers_and_two_clusters_run_every_job_once_and_keep_every_invariant(region, employee, tmp_path):
    redis_or_skip().flushdb()
    for _ in range(INSTANCES // 4):
        enroll_rtx_host(region)
    plan, image = make_gpu_plan(1), make_image()
    token = api_token_create(user=employee, scopes="*").secret

    with Deployment(env=deployment_env(), log_dir=tmp_path) as deployment:
        clusters = deployment.clusters
        apis = [Api(url, token) for url in deployment.urls]

        def create(number: int):
            body = {"type": plan.pk, "region": region.pk, "image": image.pk, "label": f"scale-{number}",
                    "root_pass": "Scale-Out-Pass-1234"}  # fmt: skip
            return number, apis[number % 2].post("/v4/linode/instances", body)

        with ThreadPoolExecutor(max_workers=6) as pool:
            created = list(pool.map(create, range(INSTANCES)))
        assert [r.status_code for _, r in created] == [200] * INSTANCES, [r.text for _, r in created]
        ids = {number: response.json()["id"] for number, response in created}
        wait_until(
            lambda: (
                Instance.objects.filter(pk__in=ids.values(), status="running").count() == INSTANCES
                or not clusters.alive()
            ),
            timeout=120,
            what="every instance running",
        )
        assert clusters.alive()

        def delete(number: int):  # through the other server
            return apis[(number + 1) % 2].delete(f"/v4/linode/instances/{ids[number]}")

        with ThreadPoolExecutor(max_workers=6) as pool:
            deleted = list(pool.map(delete, range(INSTANCES)))
        assert [r.status_code for r in deleted] == [200] * INSTANCES, [r.text for r in deleted]
        wait_until(
            lambda: (
                (
                    Instance.objects.filter(status="deleted").count() == INSTANCES
                    and not GpuDevice.objects.filter(state=GpuDevice.State.CLEANING).exists()
                )
                or not clusters.alive()
            ),
            timeout=120,
            what="every instance deleted and its cards cleaned",
        )
        assert [api.get(f"/v4/linode/instances/{ids[0]}").status_code for api in apis] == [404, 404]
        clusters.__exit__()  # every log complete before it is read
        audit = deployment.audit()  # the domains too, as the service holds them

    jobs = list(Job.objects.all())
    assert Counter(job.action for job in jobs) == {"linode_create": INSTANCES, "linode_delete": INSTANCES}
    assert {(job.status, job.attempts, job.error) for job in jobs} == {(Job.Status.FINISHED, 1, "")}
    runs = Task.objects.filter(func="provisioning.tasks.run_job")
    assert sorted(runs.values_list("name", flat=True)) == sorted(f"job-{job.pk}" for job in jobs)
    assert all(task.success for task in runs)
    processed = {
        log.name: re.findall(r"Processed '[\w.]+' \((job-\d+)\)", log.read_text())
        for log in sorted(tmp_path.glob("cluster-*.log"))
    }
    everywhere = [name for names in processed.values() for name in names]
    assert sorted(everywhere) == sorted(f"job-{job.pk}" for job in jobs)  # each job once, by one cluster
    assert all(processed.values()), f"a cluster took no job: {processed}"

    assert fleet_violations(hypervisor=False) == []
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert "fleet sound" in audit.stdout
