"""Where a create's CPU goes: POST /v4/linode/instances in-process (Django's test client through every
middleware, as gunicorn would call it), on PostgreSQL, on a seeded fleet.

Not a benchmark (no target): a profile for docs/performance.md and for anyone chasing a regression.
Prints, per create: CPU of this process and of its PostgreSQL backend, the statements sent (by kind),
and with --profile the functions with the most cumulative CPU (cProfile). With --claims N, the same
for N claims alone (allocation_claim for instances already written), and the difference: what
everything around the claim costs a create.

    python -m benchmarks.profile_create [--hosts 1000] [--creates 200] [--claims 200] [--profile]
        [--statements]
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import re
import sys
import time
from collections import Counter

from benchmarks.database import fresh_database

DATABASE = "gpuadmin_profile_create"
ROOT_PASS = "Bench-Passw0rd!"


def _setup(hosts: int) -> str:
    os.environ["DATABASE_URL"] = fresh_database(DATABASE)
    os.environ["GPUADMIN_DEBUG"] = "0"
    os.environ.setdefault(
        "GPUADMIN_SECRET_KEY", "profile-only-secret-key-not-for-production-0123456789abcdef"
    )
    os.environ["GPUADMIN_ALLOWED_HOSTS"] = "testserver"
    os.environ["GPUADMIN_API_RATE_REQUESTS"] = os.environ["GPUADMIN_API_RATE_CREATES"] = str(10**9)
    os.environ["GPUADMIN_LOG_LEVEL"] = "ERROR"
    os.environ["GPUADMIN_DB_CONN_MAX_AGE"] = "86400"  # one connection throughout: its backend is measured
    os.environ["DJANGO_SETTINGS_MODULE"] = "gpuadmin.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import Account
    from accounts.services import account_create, api_token_create, user_create
    from gpuadmin.demo import seed_demo
    from inventory.models import Region
    from networking.services import pool_create

    call_command("migrate", verbosity=0)
    seed_demo()
    call_command("seed_fleet", "--hosts", str(hosts), "--region", "bench-east", stdout=io.StringIO())
    pool_create(region=Region.objects.get(pk="bench-east"), network="10.250.0.0/16")
    account = account_create(name="bench", email="bench@example.com", kind=Account.Kind.EMPLOYEE)
    user = user_create(username="bench", email="bench@example.com", password="x", account=account)
    return api_token_create(user=user).secret


def _backend_cpu() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kind(sql: str) -> str:
    """A statement's kind and table, numbers and literals stripped: 'SELECT provisioning_job'."""
    words = sql.split()
    verb = words[0].upper() if words else "?"
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT", "PREPARE", "DEALLOCATE"):
        return verb
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE)
    return f"{verb} {table.group(1) if table else ''}".strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--creates", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="cProfile the creates (slower).")
    parser.add_argument("--statements", action="store_true", help="Print every statement of one create.")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--sort", default="cumulative", help="cProfile order: cumulative, tottime, ...")
    parser.add_argument("--claims", type=int, default=0, help="Also measure this many claims alone.")
    args = parser.parse_args(argv)
    token = _setup(args.hosts)
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    plan = {"type": "g1-gpu-rtx6000-1", "region": "bench-east", "image": "linode/ubuntu22.04"}
    body = json.dumps({**plan, "root_pass": ROOT_PASS})

    def create() -> None:
        response = client.post("/v4/linode/instances", body, content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"create answered {response.status_code}: {response.content[:300]!r}")

    for _ in range(20):  # warm: prepared statements, caches, the token's last_used
        create()
    with CaptureQueriesContext(connection) as captured:
        create()
    statements = [q["sql"] for q in captured.captured_queries]
    if args.statements:
        for sql in statements:
            sys.stderr.write(sql[:300].replace("\n", " ") + "\n")
    profiler = cProfile.Profile() if args.profile else None
    backend_before, client_before, wall_before = _backend_cpu(), time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for _ in range(args.creates):
        create()
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - wall_before
    client_ms = (time.process_time() - client_before) * 1000 / args.creates
    backend_ms = (_backend_cpu() - backend_before) * 1000 / args.creates
    result = {
        "hosts": args.hosts,
        "creates": args.creates,
        "web_cpu_ms_per_create": round(client_ms, 2),
        "database_cpu_ms_per_create": round(backend_ms, 2),
        "wall_ms_per_create": round(wall * 1000 / args.creates, 2),
        "statements_per_create": len(statements),
        "statements_by_kind": dict(Counter(_kind(s) for s in statements).most_common()),
        "profiled": bool(profiler),
        "load_average_1": round(os.getloadavg()[0], 2),
    }
    if args.claims:
        claim = _claims_alone(args.claims)
        result["claim_alone"] = claim
        result["around_the_claim"] = {
            "web_cpu_ms_per_create": round(client_ms - claim["web_cpu_ms_per_claim"], 2),
            "database_cpu_ms_per_create": round(backend_ms - claim["database_cpu_ms_per_claim"], 2),
            "statements_per_create": len(statements) - claim["statements_per_claim"],
        }
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.top)
        sys.stderr.write(out.getvalue())
    sys.stdout.write(json.dumps(result) + "\n")
    connection.close()
    return 0


def _claims_alone(count: int) -> dict:
    """CPU and statements per claim of the create's plan, for instances written beforehand."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import Account
    from inventory.models import InstanceType, Region
    from provisioning.claims import allocation_claim
    from provisioning.models import Instance

    plan, region = InstanceType.objects.get(pk="g1-gpu-rtx6000-1"), Region.objects.get(pk="bench-east")
    account = Account.objects.get(name="bench")
    instances = Instance.objects.bulk_create(
        Instance(account=account, label=f"claim-{n}", region=region, instance_type=plan)
        for n in range(count + 1)
    )
    with CaptureQueriesContext(connection) as captured:
        allocation_claim(instance=instances[0], plan=plan, region=region)
    backend_before, client_before = _backend_cpu(), time.process_time()
    for instance in instances[1:]:
        allocation_claim(instance=instance, plan=plan, region=region)
    return {
        "claims": count,
        "web_cpu_ms_per_claim": round((time.process_time() - client_before) * 1000 / count, 2),
        "database_cpu_ms_per_claim": round((_backend_cpu() - backend_before) * 1000 / count, 2),
        "statements_per_claim": len(captured.captured_queries),
    }


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
