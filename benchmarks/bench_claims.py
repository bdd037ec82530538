"""Claim latency and throughput on PostgreSQL at 1,000 and 10,000 GPU hosts (8 GPUs each).

Creates its own database (gpuadmin_bench) on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres), seeds the fleet with seed_fleet's code, then at each
size measures a placement + claim (allocation_claim, its own transaction, committed):

- one client: p50/p99/max latency and claims per second;
- 16 clients, one process and connection each, started together: claims per second and latency;
  each client, like the single one, warms its connection with a few untimed claims first;
- queries per claim.

Requests follow the packing mix (1/2/3/4 GPUs at 40/30/10/20%), seeded. Targets: p99 under 20 ms at
10,000 hosts and at least 200 claims/s with 16 clients. Prints one JSON object on its last line and
exits non-zero when a target is missed. `python -m benchmarks.bench_claims [--sizes 1000,10000]`.
"""

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from urllib.parse import urlsplit, urlunsplit

BENCH_DATABASE = "gpuadmin_bench"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres"
PROFILE = "rtx6000-2x4"
MIX = {1: 0.4, 2: 0.3, 3: 0.1, 4: 0.2}
CLIENTS = 16


def _database_url() -> str:
    parts = urlsplit(os.environ.get("DATABASE_URL") or DEFAULT_URL)
    if not parts.scheme.startswith("postgres"):
        raise SystemExit("bench_claims needs PostgreSQL: set DATABASE_URL=postgres://...")
    return urlunsplit(parts._replace(path=f"/{BENCH_DATABASE}"))


def _create_database(url: str) -> None:
    import psycopg2

    parts = urlsplit(url)
    admin = psycopg2.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        cursor.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    admin.close()


def _setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    # Production settings: with debug on Django logs and formats every query, which costs the claim
    # CPU and caps CaptureQueriesContext at 9,000 queries.
    os.environ["GPUADMIN_DEBUG"] = "0"
    os.environ.setdefault("GPUADMIN_SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789abcdef")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpuadmin.settings")
    import django

    django.setup()


def _world():
    from accounts.models import Account
    from inventory.models import GpuModel, InstanceType, Region

    region, _ = Region.objects.get_or_create(id="us-east", defaults={"label": "Newark, NJ", "country": "us"})
    model, _ = GpuModel.objects.get_or_create(
        vendor_id=0x10DE,
        product_id=0x1E30,
        defaults={"name": "NVIDIA Quadro RTX 6000", "short_name": "RTX 6000", "vram_mib": 24576},
    )
    plans = {}
    for gpus, vcpus in ((1, 8), (2, 16), (3, 20), (4, 24)):
        plans[gpus], _ = InstanceType.objects.get_or_create(
            id=f"g1-gpu-rtx6000-{gpus}",
            defaults={
                "label": f"RTX6000 x{gpus}",
                "type_class": "gpu",
                "gpus": gpus,
                "gpu_model": model,
                "vcpus": vcpus,
                "memory_mib": 32768 * gpus,
                "disk_mib": 655360 * gpus,
                "transfer_gb": 20000,
                "network_out_mbps": 10000,
                "price_hourly": "1.50",
                "price_monthly": "1000.00",
            },
        )
    account, _ = Account.objects.get_or_create(name="bench", defaults={"email": "bench@example.com"})
    return region, plans, account


def _instances(account, region, plans, count: int, seed: int) -> list[tuple[int, int]]:
    """(instance id, GPUs of its plan), written in bulk before the clock starts."""
    from provisioning.models import Instance

    rng = random.Random(seed)
    sizes, weights = zip(*MIX.items(), strict=True)
    chosen = [rng.choices(sizes, weights)[0] for _ in range(count)]
    rows = Instance.objects.bulk_create(
        [
            Instance(account=account, label=f"b{seed}-{i}", region=region, instance_type=plans[g])
            for i, g in enumerate(chosen)
        ],
        batch_size=2000,
    )
    return [(row.pk, g) for row, g in zip(rows, chosen, strict=True)]


def _run_claims(work: list[tuple[int, int]]) -> tuple[list[float], int, float, float]:
    """Claim for each instance in turn: (latencies in ms, rejections, start, end)."""
    from inventory.models import InstanceType, Region
    from provisioning.claims import allocation_claim
    from provisioning.exceptions import NoCapacity
    from provisioning.models import Instance

    region = Region.objects.get(pk="us-east")
    plans = {p.gpus: p for p in InstanceType.objects.filter(type_class="gpu")}
    instances = Instance.objects.in_bulk([pk for pk, _ in work])
    latencies, rejected = [], 0
    start = time.perf_counter()
    for pk, gpus in work:
        began = time.perf_counter()
        try:
            allocation_claim(instance=instances[pk], plan=plans[gpus], region=region)
        except NoCapacity:
            rejected += 1
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies, rejected, start, time.perf_counter()


def _backend_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend, when the server runs on this machine."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_per_claim(work: list[tuple[int, int]]) -> dict:
    """CPU milliseconds one claim costs the client and the server: unlike latency, this does not
    depend on what else the machine runs, and 2 cores / that cost bounds the throughput."""
    server_before, client_before = _backend_cpu_seconds(), time.process_time()
    _run_claims(work)
    client = (time.process_time() - client_before) * 1000 / len(work)
    server_after = _backend_cpu_seconds()
    server = None if server_before is None else (server_after - server_before) * 1000 / len(work)
    result = {"client_ms": round(client, 2), "server_ms": round(server, 2) if server is not None else None}
    if server is not None:
        result["two_core_bound_claims_per_s"] = round(2000 / (client + server), 1)
    return result


def _client(warm, work, barrier, results) -> None:
    from django.db import connection

    _run_claims(warm)
    barrier.wait()
    results.put(_run_claims(work))
    connection.close()


def _concurrent(warm: list[tuple[int, int]], work: list[tuple[int, int]], clients: int) -> dict:
    """Each client first claims its share of `warm` untimed, as the single client does: a worker's
    connection has prepared the claim's statements long before, and this measures that steady state."""
    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients)
    results = context.Queue()
    processes = [
        context.Process(target=_client, args=(warm[i::clients], work[i::clients], barrier, results))
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    latencies = [ms for outcome in outcomes for ms in outcome[0]]
    wall = max(o[3] for o in outcomes) - min(o[2] for o in outcomes)
    return {
        "clients": clients,
        "claims": len(latencies),
        "rejected": sum(o[1] for o in outcomes),
        "claims_per_s": round(len(latencies) / wall, 1),
        **_percentiles(latencies),
    }


def _percentiles(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


def _queries_per_claim(work: list[tuple[int, int]]) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from inventory.models import InstanceType, Region
    from provisioning.claims import allocation_claim
    from provisioning.exceptions import NoCapacity
    from provisioning.models import Instance

    region = Region.objects.get(pk="us-east")
    plans = {p.gpus: p for p in InstanceType.objects.filter(type_class="gpu")}
    counts = []
    for pk, gpus in work:
        instance = Instance.objects.get(pk=pk)
        with CaptureQueriesContext(connection) as captured:
            try:
                allocation_claim(instance=instance, plan=plans[gpus], region=region)
            except NoCapacity:
                pass
        counts.append(len(captured.captured_queries))
    return {"mean": round(statistics.mean(counts), 1), "max": max(counts), "min": min(counts)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="Fleet sizes to measure, ascending.")
    parser.add_argument("--claims", type=int, default=600, help="Claims timed with one client, per size.")
    parser.add_argument("--concurrent-claims", type=int, default=960, help="Claims by 16 clients, per size.")
    args = parser.parse_args(argv)
    url = _database_url()
    _create_database(url)
    _setup_django(url)
    from django.core.management import call_command
    from django.db import connection

    from inventory.fleet import fleet_seed
    from inventory.models import Host, NumaNode
    from inventory.selectors import region_capacity
    from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation

    call_command("migrate", verbosity=0)
    region, plans, account = _world()
    stages = []
    for seed, size in enumerate(int(s) for s in args.sizes.split(",")):
        began = time.perf_counter()
        fleet_seed(region=region, count=size - Host.objects.count(), profile=PROFILE)
        seeded = time.perf_counter() - began
        with connection.cursor() as cursor:
            # Statistics for the new rows, and their pages written out now rather than by a
            # checkpoint in the middle of the timed claims.
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("CHECKPOINT")
        warm = _instances(account, region, plans, 50, seed=1000 + seed)
        warm_clients = _instances(account, region, plans, 10 * CLIENTS, seed=6000 + seed)
        single = _instances(account, region, plans, args.claims, seed=2000 + seed)
        many = _instances(account, region, plans, args.concurrent_claims, seed=3000 + seed)
        counted = _instances(account, region, plans, 100, seed=4000 + seed)
        costed = _instances(account, region, plans, 200, seed=5000 + seed)
        _run_claims(warm)
        with connection.cursor() as cursor:
            # The allocation tables were empty at the last ANALYZE; autovacuum would have counted
            # their rows again by now on a live system.
            tables = (
                model._meta.db_table for model in (Allocation, AllocatedGpu, AllocatedCpu, AllocatedMemory)
            )
            cursor.execute(f"ANALYZE {', '.join(tables)}")
        latencies, rejected, start, end = _run_claims(single)
        one = {
            "claims": len(latencies),
            "rejected": rejected,
            "claims_per_s": round(len(latencies) / (end - start), 1),
            **_percentiles(latencies),
        }
        concurrent = _concurrent(warm_clients, many, CLIENTS)
        queries = _queries_per_claim(counted)
        cpu = _cpu_per_claim(costed)
        began = time.perf_counter()
        region_capacity(region=region, with_hosts=True)
        capacity_seconds = time.perf_counter() - began
        totals = NumaNode.objects.filter(gpu_model__isnull=False).values_list("free_gpus", "allocated_gpus")
        free = sum(f for f, _ in totals)
        allocated = sum(a for _, a in totals)
        stages.append(
            {
                "hosts": size,
                "gpus": 8 * size,
                "seed_fleet_seconds": round(seeded, 1),
                "one_client": one,
                "sixteen_clients": concurrent,
                "queries_per_claim": queries,
                "cpu_per_claim": cpu,
                "region_capacity_seconds": round(capacity_seconds, 2),
                "gpus_allocated_after": allocated,
                "gpus_free_after": free,
            }
        )
        sys.stderr.write(json.dumps(stages[-1]) + "\n")
    largest = stages[-1]
    targets = {
        "p99_ms_under": 20,
        "p99_ms_measured": largest["one_client"]["p99_ms"],
        "sixteen_clients_claims_per_s_at_least": 200,
        "sixteen_clients_claims_per_s_measured": largest["sixteen_clients"]["claims_per_s"],
    }
    met = targets["p99_ms_measured"] < 20 and targets["sixteen_clients_claims_per_s_measured"] >= 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(" on ")[0]
    connection.close()
    output = {
        "benchmark": "bench_claims",
        "database": version,
        "cpus": os.cpu_count(),
        # Other work on the machine shows here: on a shared two-core box it decides the numbers.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "profile": PROFILE,
        "mix": MIX,
        "stages": stages,
        "targets": targets,
        "target_met": met,
    }
    sys.stdout.write(json.dumps(output) + "\n")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
