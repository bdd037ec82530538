"""The claim's plans after a bulk enrolment: index scans that stop early, whatever the statistics say.

The claim keeps a generic plan per connection (provisioning.claims.rows). These tests EXPLAIN the
claim's two reads exactly as a claim prepares and runs them, on PostgreSQL, after 2,000 hosts arrived
in one go: once with the statistics of the fleet before them (stale) and once as seed_fleet leaves them;
and with statistics that counted few live rows in many pages, as a table holding the rows of
rolled-back transactions leaves them (what a full test run did to this test on CI).
"""

import json

import pytest
from django.db import connection, transaction

from inventory import fleet
from inventory.models import Host, NumaNode
from inventory.statistics import inventory_statistics_refresh
from provisioning.claims import allocation_claim, rows
from provisioning.claims.services import CANDIDATE_WINDOW
from provisioning.exceptions import NoCapacity
from provisioning.models import Instance
from tests.builders import make_account, make_gpu_host, make_gpu_plan, make_region, unique

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

BULK_HOSTS = 2000


def claim_reads(monkeypatch, *, plan, region) -> list[tuple[str, list]]:
    """(SQL, parameters) of the claim's candidate read and its lock-and-read, as one claim ran them."""
    sent: list[tuple[str, list]] = []
    execute = rows._execute

    def spy(cursor, sql, params=(), *, prefix=""):
        sent.append((sql, list(params)))
        return execute(cursor, sql, params, prefix=prefix)

    monkeypatch.setattr(rows, "_execute", spy)
    instance = Instance.objects.create(
        account=make_account(), label=unique("plans"), region=region, instance_type=plan
    )
    allocation_claim(instance=instance, plan=plan, region=region)
    monkeypatch.setattr(rows, "_execute", execute)
    candidates = next(s for s in sent if "ROW_NUMBER()" in s[0])
    lock = next(s for s in sent if "FOR UPDATE" in s[0])
    return [candidates, lock]


def explained(sql: str, params: list) -> dict:
    """EXPLAIN ANALYZE of the statement prepared and planned generically, as the claim runs it."""
    _, prepare = rows._statement(sql)
    with connection.cursor() as cursor:
        cursor.execute(rows.PLANNING_SQL)
        cursor.execute("PREPARE explained AS " + prepare.split(" AS ", 1)[1])
        try:
            marks = ", ".join(["%s"] * len(params))
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE explained({marks})", params)
            (plan,) = cursor.fetchone()[0]
        finally:
            cursor.execute("DEALLOCATE explained")
    return plan


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def scans_of(plan: dict, table: str) -> list[dict]:
    return [n for n in nodes(plan["Plan"]) if n.get("Relation Name") == table]


def assert_reads_stop_early(candidates: dict, lock: dict) -> None:
    # Candidates: best fit's order read from numanode_gpu_candidates and stopped after the window,
    # each node's host looked up by its key; never every node or host of the region, never sorted.
    (candidate_scan,) = [n for n in scans_of(candidates, NumaNode._meta.db_table) if n["Alias"] == "c"]
    assert (candidate_scan["Node Type"], candidate_scan["Index Name"]) == (
        "Index Scan",
        "numanode_gpu_candidates",
    )
    assert candidate_scan["Actual Rows"] <= 2 * CANDIDATE_WINDOW
    for scan in scans_of(candidates, Host._meta.db_table):
        assert (scan["Node Type"], scan["Index Name"]) == ("Index Scan", "inventory_host_pkey")
        assert scan["Actual Loops"] <= 2 * CANDIDATE_WINDOW
    # The lock: the ranked hosts by their key, not the region's hosts through (region, kind, state).
    for scan in scans_of(lock, Host._meta.db_table):
        assert scan.get("Index Name") == "inventory_host_pkey", json.dumps(lock["Plan"], indent=1)
    # Either statement reads a few pages, not the fleet's (4,000 nodes, 2,000 x 96 CPUs), and is not
    # compiled (JIT costs hundreds of milliseconds, and the disabled plans' costs would ask for it).
    for statement in (candidates, lock):
        assert "JIT" not in statement
        touched = statement["Plan"]["Shared Hit Blocks"] + statement["Plan"]["Shared Read Blocks"]
        assert touched < 400


def test_the_claims_reads_use_the_indexes_and_stop_early_after_a_bulk_enrolment(monkeypatch):
    region = make_region("bulk-east")
    plan = make_gpu_plan(1)
    for _ in range(3):
        make_gpu_host(region=region, numa_nodes=2, gpus_per_node=4)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # the statistics of the fleet before the bulk enrolment
    # Hosts that came without seed_fleet's ANALYZE (a restore, a script): the statistics are stale.
    with monkeypatch.context() as unanalysed:
        unanalysed.setattr(fleet, "inventory_statistics_refresh", list)
        fleet.fleet_seed(region=region, count=BULK_HOSTS, profile="rtx6000-2x4")
    assert_reads_stop_early(
        *(explained(*read) for read in claim_reads(monkeypatch, plan=plan, region=region))
    )

    # As seed_fleet leaves them: analysed.
    inventory_statistics_refresh()
    assert_reads_stop_early(
        *(explained(*read) for read in claim_reads(monkeypatch, plan=plan, region=region))
    )


def dead_node_rows(count_per_host: int) -> None:
    """Rows of a rolled-back transaction in the node table: dead, still in its pages until a vacuum."""
    columns = [f.column for f in NumaNode._meta.concrete_fields if f.column != "id"]
    copied = ", ".join(
        "g" if column == "index" else f"n.{connection.ops.quote_name(column)}" for column in columns
    )
    table = NumaNode._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(map(connection.ops.quote_name, columns))}) "
            f'SELECT {copied} FROM {table} n, generate_series(100, 99 + %s) g WHERE n."index" = 0',
            [count_per_host],
        )
        transaction.set_rollback(True)


def test_the_claims_reads_use_the_indexes_when_analyse_counted_dead_rows(monkeypatch):
    region = make_region("bulk-north")
    plan = make_gpu_plan(1)
    for _ in range(3):
        make_gpu_host(region=region, numa_nodes=2, gpus_per_node=4)
    dead_node_rows(3000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # 6 live nodes in the pages of 9,000
    with monkeypatch.context() as unanalysed:
        unanalysed.setattr(fleet, "inventory_statistics_refresh", list)
        fleet.fleet_seed(region=region, count=BULK_HOSTS, profile="rtx6000-2x4")
    assert_reads_stop_early(
        *(explained(*read) for read in claim_reads(monkeypatch, plan=plan, region=region))
    )


def planner_settings() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(rows.PLANNING)])
        return dict(cursor.fetchall())


def test_the_transaction_goes_on_with_the_planner_settings_it_had():
    region = make_region("bulk-south")
    plan = make_gpu_plan(1)
    make_gpu_host(region=region, numa_nodes=1, gpus_per_node=1)
    before = planner_settings()
    assert before["enable_seqscan"] == "on"
    with transaction.atomic():
        for _ in range(2):  # the second finds nothing: NoCapacity
            instance = Instance.objects.create(
                account=make_account(), label=unique("plans"), region=region, instance_type=plan
            )
            try:
                allocation_claim(instance=instance, plan=plan, region=region)
                claimed = True
            except NoCapacity:
                claimed = False
            assert planner_settings() == before
    assert not claimed


def test_seed_fleet_leaves_statistics_that_count_its_hosts():
    region = make_region("bulk-west")
    fleet.fleet_seed(region=region, count=50, profile="rtx6000-2x2")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples FROM pg_class WHERE relname = ANY(%s)",
            [[m._meta.db_table for m in (Host, NumaNode)]],
        )
        counted = dict(cursor.fetchall())
    assert counted[Host._meta.db_table] == Host.objects.count()
    assert counted[NumaNode._meta.db_table] == NumaNode.objects.count()
