"""The 10-minute load test: a mixed workload (benchmarks/load.py) on the whole deployment, then the audit.

Two gunicorn servers, two qcluster clusters (2 workers each) on Redis, PostgreSQL (a fresh database),
the hypervisor service holding 8 simulated RTX 6000 hosts (32 cards); 8 simulated users for
BENCH_LOAD_SECONDS (600). Prints the load report (throughput, p50/p99, answers by status) with the time
the jobs took to settle and what `audit_fleet` found. Exits non-zero on a 5xx, a broken connection or a
broken invariant; speed has no target here (the machine is shared).
"""

import json
import os
import subprocess
import sys
import time

HOSTS = 8
USERS = 8


def prepare() -> dict:
    """In a process configured for the benchmark's database: schema, hosts, a user and a token."""
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import Account
    from accounts.services import account_create, api_token_create, user_create
    from gpuadmin.demo import seed_demo
    from hypervisor.profiles import RTX6000_2X2, profile_uri
    from inventory.models import Host, Region
    from inventory.sync import host_enroll
    from networking.services import pool_create

    call_command("migrate", verbosity=0)
    seed_demo()
    region = Region.objects.create(id="bench-load", label="Load", country="us")
    pool_create(region=region, network="10.251.0.0/20")  # creates and deletes for 10 minutes, with cool-down
    for number in range(HOSTS):
        hostname = f"load-gpu-{number:02d}"
        host_enroll(
            region=region,
            hostname=hostname,
            libvirt_uri=profile_uri(RTX6000_2X2, hostname),
            kind=Host.Kind.GPU,
        )
    account = account_create(name="load", email="load@example.com", kind=Account.Kind.EMPLOYEE)
    user = user_create(username="load", email="load@example.com", password="x", account=account)
    return {"token": api_token_create(user=user, scopes="*").secret, "region": region.pk}


def settled(env: dict[str, str]) -> bool:
    script = (
        "from inventory.models import GpuDevice\nfrom provisioning.models import Job\n"
        "print(Job.objects.filter(status__in=Job.IN_FLIGHT).exists() or "
        "GpuDevice.objects.filter(state='cleaning').exists())"
    )
    from benchmarks.cluster import manage

    return manage("shell", "-v", "0", "-c", script, env=env).stdout.strip() == "False"


def main() -> int:
    if sys.argv[1:] == ["--prepare"]:
        sys.stdout.write(json.dumps(prepare()) + "\n")
        return 0
    import redis

    from benchmarks.cluster import ROOT, project_env
    from benchmarks.database import fresh_database
    from benchmarks.stack import Deployment, wait_until

    seconds = float(os.environ.get("BENCH_LOAD_SECONDS", "600"))
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    redis.Redis.from_url(redis_url).flushdb()
    env = project_env(
        DATABASE_URL=fresh_database("gpuadmin_bench_load"),
        GPUADMIN_REDIS_URL=redis_url,
        GPUADMIN_Q_NAME=f"bench-load-{os.getpid()}",
        GPUADMIN_ALLOWED_HOSTS="127.0.0.1,localhost",
        GPUADMIN_API_RATE_REQUESTS="100000000",
        GPUADMIN_API_RATE_CREATES="100000000",
    )
    prepared = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_load", "--prepare"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    world = json.loads(prepared.stdout.strip().splitlines()[-1])
    with Deployment(env=env) as deployment:
        command = [sys.executable, "-m", "benchmarks.load", "--token", world["token"],
                   "--region", world["region"], "--image", "linode/ubuntu22.04",
                   "--plan", "g1-gpu-rtx6000-1", "--plan", "g1-gpu-rtx6000-2",
                   "--users", str(USERS), "--duration", str(seconds)]  # fmt: skip
        command += [arg for url in deployment.urls for arg in ("--url", url)]
        load = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        report = json.loads(load.stdout.strip().splitlines()[-1])
        started = time.monotonic()
        wait_until(lambda: settled(deployment.env), timeout=600, what="the jobs settling", poll=2)
        settle_s = round(time.monotonic() - started, 1)
        audit = deployment.audit()
    report.pop("instances_left", None)
    violations = [line for line in audit.stdout.splitlines() if line and "fleet sound" not in line]
    summary = {
        "benchmark": "bench_load",
        "what": f"mixed API load, {USERS} users, 2 gunicorn servers, 2 clusters, Redis, PostgreSQL, "
        f"{HOSTS} simulated hosts",
        **report,
        "settle_s": settle_s,
        "invariants_hold": audit.returncode == 0,
        "violations": violations[:50],
    }
    sys.stdout.write(json.dumps(summary) + "\n")
    failed = report["server_errors"] or report["transport_errors"] or audit.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
