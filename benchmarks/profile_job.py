"""Where a create job's time goes in the worker: `job_run` in-process, on PostgreSQL, on test-driver hosts
held by a real hypervisor service (as bench_provisioning runs them).

Not a benchmark (no target): a profile for docs/performance.md. Prints, per create job: wall time, CPU of
this process, of its PostgreSQL backend and of the hypervisor service, the statements sent (by kind),
the transactions, the calls to the service, and with --profile the functions with the most cumulative
CPU (cProfile).

    python -m benchmarks.profile_job [--jobs 100] [--profile] [--statements] [--no-service]
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

DATABASE = "gpuadmin_bench_provisioning_profile"
HOSTS = 50


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _setup() -> None:
    os.environ["DATABASE_URL"] = fresh_database(DATABASE)
    os.environ.setdefault(
        "GPUADMIN_SECRET_KEY", "profile-only-secret-key-not-for-production-0123456789abcdef"
    )
    os.environ["GPUADMIN_LOG_LEVEL"] = "ERROR"
    os.environ["GPUADMIN_DB_CONN_MAX_AGE"] = "86400"  # one connection throughout: its backend is measured
    os.environ["DJANGO_SETTINGS_MODULE"] = "gpuadmin.settings"
    import django

    django.setup()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_job", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--profile", action="store_true", help="cProfile the jobs, print the top functions")
    parser.add_argument("--lines", type=int, default=45, help="how many functions the profile prints")
    parser.add_argument("--sort", default="cumulative", help="the profile's order (cumulative, tottime)")
    parser.add_argument("--statements", action="store_true", help="print every statement of one job")
    parser.add_argument("--no-service", action="store_true", help="test driver in this process")
    options = parser.parse_args(argv)
    _setup()

    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from benchmarks.bench_provisioning import fleet_setup
    from benchmarks.stack import HypervisorService
    from hypervisor import routing
    from hypervisor.service.client import ServiceClient
    from provisioning import workflows
    from provisioning.models import Job
    from provisioning.services import instance_create

    account, user, plan, region, image = fleet_setup(hosts=HOSTS)
    service = None if options.no_service else HypervisorService().__enter__()
    calls: Counter[str] = Counter()
    try:
        if service is not None:
            routing.use_service(str(service.socket))
            original = ServiceClient.call

            def counted(self, uris, function, args, kwargs):
                calls[function.__qualname__] += 1
                return original(self, uris, function, args, kwargs)

            ServiceClient.call = counted
        with transaction.atomic():
            ids = [
                instance_create(
                    account=account, actor=user, plan=plan, region=region, image=image,
                    root_pass="Bench-Pass-1234",
                ).pk
                for _ in range(options.jobs)
            ]  # fmt: skip
        jobs = list(Job.objects.filter(instance_id__in=ids).order_by("pk").values_list("pk", flat=True))
        workflows.job_run(job_id=jobs[0])  # warm: imports, connections, the service's first open
        jobs = jobs[1:]
        calls.clear()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        profiler = cProfile.Profile(time.process_time) if options.profile else None  # CPU, not waits
        before_db, before_service = _cpu_seconds(backend), service and _cpu_seconds(service.process.pid)
        started_cpu, started = time.process_time(), time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            if profiler:
                profiler.enable()
            for job_id in jobs:
                workflows.job_run(job_id=job_id)
            if profiler:
                profiler.disable()
        wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        db_cpu = _cpu_seconds(backend) - before_db
        service_cpu = service and _cpu_seconds(service.process.pid) - before_service
        statements = [q["sql"] for q in queries.captured_queries]
        kinds = Counter(re.match(r"\s*(\w+)", sql).group(1).upper() for sql in statements)
        finished = Job.objects.filter(pk__in=jobs, status=Job.Status.FINISHED).count()
        count = len(jobs)
        report = {
            "jobs": count,
            "finished": finished,
            "service": service is not None,
            "per_job_ms": {
                "wall": round(1000 * wall / count, 2),
                "worker_cpu": round(1000 * cpu / count, 2),
                "database_cpu": round(1000 * db_cpu / count, 2),
                "service_cpu": round(1000 * service_cpu / count, 2) if service else None,
            },
            "statements_per_job": round(len(statements) / count, 2),
            "by_kind_per_job": {k: round(v / count, 2) for k, v in kinds.most_common()},
            "service_calls_per_job": {k: round(v / count, 2) for k, v in calls.most_common()},
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        if options.statements:
            per_job = len(statements) // count
            for query in queries.captured_queries[:per_job]:
                sys.stdout.write(f"{float(query['time']) * 1000:8.2f} ms  {query['sql'][:400]}\n")
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(options.sort).print_stats(options.lines)
            sys.stdout.write(out.getvalue())
    finally:
        if service is not None:
            routing.use_service(None)
            service.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
