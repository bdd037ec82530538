"""The load test, 2-minute version: a mixed workload (list, view, create, power, delete) from a process of
its own (benchmarks/load.py) against two gunicorn servers, two clusters, PostgreSQL and Redis; then every
invariant (provisioning.audit). Asserted: no 5xx, no broken connection, every action exercised, a sound
fleet. Not asserted: speed (`make bench` runs the 10-minute version, benchmarks/bench_load.py).
"""

import json
import os
import subprocess
import sys

import pytest

from accounts.services import api_token_create
from benchmarks.cluster import ROOT
from benchmarks.stack import Deployment, wait_until
from inventory.models import GpuDevice
from provisioning.audit import fleet_violations
from provisioning.models import Job
from tests.builders import make_gpu_plan, make_image
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.test_scale_out import deployment_env
from tests.provisioning.test_worker_clusters import redis_or_skip

SECONDS = float(os.environ.get("GPUADMIN_TEST_LOAD_SECONDS", "120"))
HOSTS = 4  # 16 cards for 6 users of up to 3 instances of 1 or 2 cards: creates past capacity happen


def unsettled() -> dict:
    """The jobs still in flight and the cards still cleaning, as a failure message should show them."""
    jobs = list(
        Job.objects.filter(status__in=Job.IN_FLIGHT).values_list(
            "pk", "action", "status", "step", "attempts", "lease_owner", "lease_expires_at", "created"
        )
    )
    cards = list(GpuDevice.objects.filter(state=GpuDevice.State.CLEANING).values_list("pk", "host_id"))
    return {"jobs": jobs, "cleaning": cards} if jobs or cards else {}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_mixed_load_on_two_servers_and_two_clusters_gets_no_5xx_and_leaves_a_sound_fleet(
    region, employee, tmp_path
):
    redis_or_skip().flushdb()
    for _ in range(HOSTS):
        enroll_rtx_host(region)
    plans, image = [make_gpu_plan(1), make_gpu_plan(2)], make_image()
    token = api_token_create(user=employee, scopes="*").secret

    with Deployment(env=deployment_env(), log_dir=tmp_path) as deployment:
        command = [sys.executable, "-m", "benchmarks.load", "--token", token, "--duration", str(SECONDS),
                   "--users", "6", "--region", region.pk, "--image", image.pk]  # fmt: skip
        command += [arg for url in deployment.urls for arg in ("--url", url)]
        command += [arg for plan in plans for arg in ("--plan", plan.pk)]
        load = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 180)
        assert load.returncode == 0, load.stderr
        report = json.loads(load.stdout.strip().splitlines()[-1])
        sys.stdout.write(json.dumps(report, indent=2) + "\n")  # the numbers, in the test's output
        try:
            wait_until(
                lambda: (not unsettled()) or not deployment.clusters.alive(),
                timeout=180,
                what="every job settled and every released card cleaned",
            )
        except TimeoutError as timeout:
            raise AssertionError(f"{timeout}; still unsettled: {unsettled()}") from None
        assert deployment.clusters.alive()
        audit = deployment.audit()

    assert report["server_errors"] == 0, report["not_ok_reasons"]
    assert report["transport_errors"] == 0, report["transport_error_kinds"]
    for action in ("list", "view", "create", "power", "delete"):
        assert report["actions"][action]["statuses"].get("200", 0) > 0, (action, report["actions"][action])
    assert Job.objects.filter(status=Job.Status.FINISHED).count() > 0
    assert fleet_violations(hypervisor=False) == []
    assert audit.returncode == 0, audit.stdout + audit.stderr
