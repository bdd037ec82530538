"""Rating and invoicing a whole month at fleet scale on PostgreSQL: 10,000 accounts, 100,000 segments.

Creates its own database (gpuadmin_bench_billing) on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres) and seeds one month (January 2026) of provisioning's
rows, as the API and the worker write them: 10,000 accounts (5 % employee teams, a GPU trial for 10 %
of customers, a country with a tax rate for half of them), 80,000 instances created across the month
on 1-, 2- and 4-GPU and standard plans, a quarter of them resized once and a fifth deleted. Then, timed
and with every query counted:

- `sync`: `usage_sync` at the month's end writes the 100,000 usage segments from those rows;
- `month`: `billing_run` two hours later (what the schedule does): syncs again (nothing to do), finds
  the closed month, rates every piece, builds, taxes and finalizes the 10,000 invoices.

Targets, for the two phases together: under 60 s and under 500 queries. Prints one JSON object on its
last line and exits non-zero when a target is missed. `python -m benchmarks.bench_billing
[--accounts 10000] [--instances-per-account 8]`.
"""

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from benchmarks.database import fresh_database

BENCH_DATABASE = "gpuadmin_bench_billing"
TARGET_SECONDS = 60.0
TARGET_QUERIES = 500
MONTH_START = datetime(2026, 1, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 2, 1, tzinfo=UTC)
BATCH = 5000


def _setup_django(url: str) -> None:
    if not url.startswith("postgres"):
        raise SystemExit("bench_billing needs PostgreSQL: set DATABASE_URL=postgres://...")
    os.environ["DATABASE_URL"] = url
    # Production settings: with debug on Django keeps every query's text for the whole run.
    os.environ["GPUADMIN_DEBUG"] = "0"
    os.environ.setdefault("GPUADMIN_SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789abcdef")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpuadmin.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _seed(*, accounts: int, per_account: int, rng: random.Random) -> dict:
    from django.db import connection

    from accounts.models import Account
    from billing.models import Promotion, TaxRate
    from inventory.models import GpuModel, InstanceType, Region
    from provisioning.models import Instance, Job

    Region.objects.get_or_create(id="us-east", defaults={"label": "Newark, NJ", "country": "us"})
    model, _ = GpuModel.objects.get_or_create(
        vendor_id=0x10DE,
        product_id=0x1E30,
        defaults={"name": "NVIDIA Quadro RTX 6000", "short_name": "RTX 6000", "vram_mib": 24576},
    )
    plans = []
    for gpus in (1, 2, 4):
        plan, _ = InstanceType.objects.get_or_create(
            id=f"g1-gpu-rtx6000-{gpus}",
            defaults={
                "label": f"Dedicated {32 * gpus}GB + RTX 6000 GPU x{gpus}",
                "type_class": InstanceType.TypeClass.GPU,
                "gpus": gpus,
                "gpu_model": model,
                "vcpus": 8 * gpus,
                "memory_mib": 32768 * gpus,
                "disk_mib": 655360 * gpus,
                "transfer_gb": 16000,
                "network_out_mbps": 10000,
                "price_hourly": Decimal("1.50") * gpus,
                "price_monthly": Decimal("1000.00") * gpus,
            },
        )
        plans.append(plan)
    standard, _ = InstanceType.objects.get_or_create(
        id="g6-standard-2",
        defaults={
            "label": "Linode 4GB",
            "type_class": InstanceType.TypeClass.STANDARD,
            "vcpus": 2,
            "memory_mib": 4096,
            "disk_mib": 81920,
            "transfer_gb": 4000,
            "network_out_mbps": 4000,
            "price_hourly": Decimal("0.036"),
            "price_monthly": Decimal("24.00"),
        },
    )
    plans.append(standard)
    for country, percent in (("DE", "19"), ("FR", "20"), ("GB", "20"), ("IN", "18"), ("US", "0")):
        TaxRate.objects.create(
            country=country, name="VAT", percent=Decimal(percent), valid_from=MONTH_START.date()
        )
    countries = ["DE", "FR", "GB", "IN", "US", "", "", "", "", "BR"]
    Account.objects.bulk_create(
        [
            Account(
                name=f"bench-{n:05d}",
                email=f"bench-{n:05d}@example.com",
                kind=Account.Kind.EMPLOYEE if n % 20 == 0 else Account.Kind.CUSTOMER,
                country=countries[n % len(countries)],
            )
            for n in range(accounts)
        ],
        batch_size=BATCH,
    )
    account_ids = list(Account.objects.order_by("pk").values_list("pk", flat=True))
    customers = list(Account.objects.filter(kind=Account.Kind.CUSTOMER).values_list("pk", flat=True))
    starts = [MONTH_START + timedelta(days=rng.randrange(25)) for _ in range(len(customers) // 10)]
    Promotion.objects.bulk_create(
        [
            Promotion(
                account_id=account_id,
                kind=Promotion.Kind.GPU_TRIAL,
                summary="GPU trial: $100.00 for 7 days of GPU usage",
                credit=Decimal("100.00"),
                starts_at=start,
                expires_at=start + timedelta(days=7),
            )
            for account_id, start in zip(rng.sample(customers, len(starts)), starts, strict=True)
        ],
        batch_size=BATCH,
    )
    Instance.objects.bulk_create(
        [
            Instance(
                account_id=account_id,
                label=f"linode-{n}",
                region_id="us-east",
                instance_type=rng.choices(plans, weights=[40, 25, 10, 25])[0],
                status=Instance.Status.RUNNING,
            )
            for account_id in account_ids
            for n in range(per_account)
        ],
        batch_size=BATCH,
    )
    instances = list(Instance.objects.order_by("pk").values_list("pk", "account_id", "instance_type_id"))
    created, resizes, deletes = {}, 0, 0
    creates = []
    for pk, account_id, _ in instances:
        start = MONTH_START + timedelta(minutes=rng.randrange(30 * 24 * 60))
        created[pk] = start
        creates.append(
            Job(instance_id=pk, account_id=account_id, action=Job.Action.CREATE, status="finished")
        )
    Job.objects.bulk_create(creates, batch_size=BATCH)
    finished = [
        (job_id, created[pk] + timedelta(minutes=2))
        for job_id, pk in Job.objects.values_list("pk", "instance_id")
    ]
    later_jobs, plan_after, deleted_at = [], {}, {}
    for pk, account_id, plan_id in instances:
        moment = created[pk] + timedelta(minutes=2)
        if rng.random() < 0.25:
            to = rng.choice([p.pk for p in plans if p.pk != plan_id])
            moment += timedelta(
                minutes=rng.randrange(1, max(2, int((MONTH_END - moment).total_seconds() // 60)))
            )
            if moment < MONTH_END:
                later_jobs.append(
                    (
                        Job(
                            instance_id=pk,
                            account_id=account_id,
                            action=Job.Action.RESIZE,
                            status="finished",
                            params={"from": plan_id, "to": to},
                        ),
                        moment,
                    )
                )
                plan_after[pk] = to
                resizes += 1
        if rng.random() < 0.2:
            end = moment + timedelta(minutes=rng.randrange(1, 7 * 24 * 60))
            if end < MONTH_END:
                later_jobs.append(
                    (
                        Job(
                            instance_id=pk, account_id=account_id, action=Job.Action.DELETE, status="finished"
                        ),
                        end,
                    )
                )
                deleted_at[pk] = end
                deletes += 1
    Job.objects.bulk_create([job for job, _ in later_jobs], batch_size=BATCH)
    finished += [(job.pk, moment) for job, moment in later_jobs]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE provisioning_job AS j SET finished = v.finished, "
            "created = v.finished - interval '2 minutes', started = v.finished - interval '2 minutes', "
            "percent_complete = 100 "
            "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, finished) WHERE j.id = v.id",
            [[job_id for job_id, _ in finished], [moment for _, moment in finished]],
        )
        rows = [
            (pk, created[pk], deleted_at.get(pk), plan_after.get(pk, plan_id)) for pk, _, plan_id in instances
        ]
        cursor.execute(
            "UPDATE provisioning_instance AS i SET created = v.created, deleted_at = v.deleted_at, "
            "instance_type_id = v.plan, "
            "status = CASE WHEN v.deleted_at IS NULL THEN 'running' ELSE 'deleted' END "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::varchar[]) "
            "AS v(id, created, deleted_at, plan) WHERE i.id = v.id",
            [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows]],
        )
        cursor.execute("ANALYZE")
    return {
        "accounts": accounts,
        "instances": len(instances),
        "resized": resizes,
        "deleted": deletes,
        "trials": len(customers) // 10,
    }


def _timed(call):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - started
    # The slowest statements, to standard error: where the time goes when a target is missed.
    for query in sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:6]:
        sys.stderr.write(f"{float(query['time']):8.2f} s  {query['sql'][:300]}\n")
    return result, round(seconds, 2), len(captured)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--instances-per-account", type=int, default=8)
    args = parser.parse_args(argv)
    _setup_django(fresh_database(BENCH_DATABASE))
    from billing.models import Invoice, InvoiceItem, UsageSegment
    from billing.services import billing_run, usage_sync

    rng = random.Random(15)
    seeded = _seed(accounts=args.accounts, per_account=args.instances_per_account, rng=rng)
    sync, sync_seconds, sync_queries = _timed(lambda: usage_sync(now=MONTH_END))
    run, run_seconds, run_queries = _timed(lambda: billing_run(now=MONTH_END + timedelta(hours=2)))
    invoices = Invoice.objects.filter(period=MONTH_START.date())
    result = {
        "benchmark": "bench_billing",
        "database": "postgresql",
        **seeded,
        "segments": UsageSegment.objects.count(),
        "invoices": invoices.count(),
        "invoices_finalized": invoices.filter(status=Invoice.Status.FINALIZED).count(),
        "invoices_taxed": invoices.exclude(tax=0).count(),
        "items": InvoiceItem.objects.count(),
        "sync": {"seconds": sync_seconds, "queries": sync_queries, "report": str(sync)},
        "month": {"seconds": run_seconds, "queries": run_queries, "report": str(run)},
        "total_seconds": round(sync_seconds + run_seconds, 2),
        "total_queries": sync_queries + run_queries,
        "target_seconds": TARGET_SECONDS,
        "target_queries": TARGET_QUERIES,
    }
    result["met"] = result["total_seconds"] < TARGET_SECONDS and result["total_queries"] < TARGET_QUERIES
    sys.stdout.write(json.dumps(result) + "\n")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
