"""Real worker processes: two django-q2 clusters sharing a Redis broker and a PostgreSQL database."""

import os
import re
import time
import uuid

import pytest
import redis
from django.db import connection
from django_q.models import Task

from benchmarks.cluster import WorkerClusters, database_url, manage, project_env
from provisioning.models import Instance, Job
from tests.builders import make_gpu_plan, make_image
from tests.provisioning.conftest import enroll_rtx_host

# A Redis database of its own (the test flushes it); override where several checkouts share one Redis.
REDIS_URL = os.environ.get("GPUADMIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
BURST = 12


def redis_or_skip() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip("needs Redis on 127.0.0.1:6379 (CI has it)")
    return client


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_clusters_on_redis_run_a_burst_of_creates_each_exactly_once(region, employee, tmp_path):
    redis_or_skip().flushdb()
    for _ in range(3):
        enroll_rtx_host(region)  # 12 cards: room for the whole burst
    plan, image = make_gpu_plan(1), make_image()
    env = project_env(
        DATABASE_URL=database_url(connection.settings_dict),
        GPUADMIN_REDIS_URL=REDIS_URL,
        GPUADMIN_Q_NAME=f"gpuadmin-test-{uuid.uuid4().hex[:8]}",
        GPUADMIN_LOG_LEVEL="INFO",
    )
    with WorkerClusters(count=2, env=env, log_dir=tmp_path) as clusters:
        burst = manage(
            "create_instances", "--user", employee.username, "--plan", plan.pk, "--region", region.pk,
            "--image", image.pk, "--count", str(BURST), env=env, check=False,
        )  # fmt: skip
        assert burst.returncode == 0, burst.stdout + burst.stderr
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and clusters.alive():
            if not Job.objects.filter(status__in=Job.IN_FLIGHT).exists():
                break
            time.sleep(0.5)
    jobs = list(Job.objects.all())
    assert len(jobs) == BURST
    assert {job.status for job in jobs} == {Job.Status.FINISHED}, [job.error for job in jobs]
    assert {job.attempts for job in jobs} == {1}
    assert set(Instance.objects.values_list("status", flat=True)) == {Instance.Status.RUNNING}
    runs = Task.objects.filter(func="provisioning.tasks.run_job")
    assert runs.count() == BURST and all(task.success for task in runs)
    processed = []
    for log in tmp_path.glob("cluster-*.log"):
        processed += re.findall(r"Processed '[\w.]+' \((job-\d+)\)", log.read_text())
    assert sorted(processed) == sorted(f"job-{job.pk}" for job in jobs)  # each task once, by one cluster
