"""The claim's hot path in plain SQL: a claim must cost a few milliseconds at 10,000 hosts.

Building and compiling ORM querysets cost more CPU than PostgreSQL spends running these statements,
and each statement is a round trip that costs both sides; with 16 clients on two cores that was the
limit. So a claim is three statements on PostgreSQL: read the candidates, lock a host and read what it
holds, write the allocation (one statement of data-modifying CTEs). SQLite, which has no locks and no
such CTEs, runs the same reads and writes as the plain statements the ORM would write. Both paths are
covered by the claim tests, on each database. Everything that is not on the path of every claim
(release, move, recount, rejection wording) stays in the ORM.
"""

import hashlib
import json
import re
import weakref
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from django.db import connection
from django.utils import timezone

from inventory.fit import HostFree, NodeFree, Shape
from inventory.models import GpuDevice, Host, HostCpu, NumaNode
from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance

NODE = NumaNode._meta.db_table
HOST = Host._meta.db_table
GPU = GpuDevice._meta.db_table
CPU = HostCpu._meta.db_table
ALLOCATION = Allocation._meta.db_table
ALLOCATED_GPU = AllocatedGpu._meta.db_table
ALLOCATED_CPU = AllocatedCpu._meta.db_table
ALLOCATED_MEMORY = AllocatedMemory._meta.db_table
INSTANCE = Instance._meta.db_table

# (column, descending) per policy order key; "index" is quoted because it is an SQL keyword.
_COLUMNS = {
    "free_gpus": "c.free_gpus",
    "free_cores": "c.free_cores",
    "host_id": "c.host_id",
    "index": 'c."index"',
}

# Prepared statement name -> executions since it was planned, per connection.
_prepared: "weakref.WeakKeyDictionary[object, dict[str, int]]" = weakref.WeakKeyDictionary()
_ATTEMPT = "gpuadmin_claim_attempt"
# A statement is planned again after this many executions on one connection, so that its plan keeps
# up with tables that grew faster than autovacuum analyses them.
REPLAN_AFTER = 100

# What every claim statement is planned under (PostgreSQL), whatever the statistics say. Each statement
# is a walk by key through an index: the candidates in the order of numanode_gpu_candidates, hosts,
# nodes, CPUs and allocation rows by their keys, nested loops of a few rows each. A table's statistics
# can make another plan look cheaper: right after a bulk enrolment (the region looks small), or when
# ANALYZE counted few live rows in many pages (rolled-back or deleted rows not vacuumed yet), and then
# the planner reads every node of the region and sorts it, or scans a whole table, at every claim for
# as long as the plan is kept. So for the claim's statements a sequential scan, a bitmap scan (which
# gives up the index order), a sort where the index gives the order, a hash or merge join cost more
# than any walk by key: the same plans whatever the statistics. A disabled node adds 10^10 to a plan's
# cost estimate (PostgreSQL 15), which would have every claim statement JIT-compiled (0.4-0.9 s each):
# JIT is off for them. The settings are transaction-local, sent with each statement because PostgreSQL
# plans a kept statement again whenever its tables are analysed, and put back to the connection's own
# values by the claim's last statement (restoring()) or restore_planning().
PLANNING = {
    "plan_cache_mode": "force_generic_plan",
    "jit": "off",
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_sort": "off",
    "enable_hashjoin": "off",
    "enable_mergejoin": "off",
}
PLANNING_SQL = "".join(f"SET LOCAL {name} = {value}; " for name, value in PLANNING.items())
# Connection -> the values RESET would give the PLANNING settings.
_reset_values: "weakref.WeakKeyDictionary[object, dict[str, str]]" = weakref.WeakKeyDictionary()


@lru_cache(maxsize=256)
def _statement(sql: str) -> tuple[str, str]:
    """(name, PREPARE text) of `sql`: %s placeholders numbered $1, $2, ..."""
    numbered = iter(range(1, sql.count("%s") + 1))
    name = "gpuadmin_claim_" + hashlib.sha1(sql.encode()).hexdigest()[:16]
    return name, f"PREPARE {name} AS " + re.sub(r"%s", lambda _: f"${next(numbered)}", sql)


def _execute(cursor, sql: str, params: Sequence = (), *, prefix: str = "") -> None:
    """Run `sql` (%s placeholders); on PostgreSQL as a prepared statement with a generic plan.

    Planning is most of what these short statements cost PostgreSQL: unprepared, a claim spent 3.3 ms
    planning its reads; prepared with a plan per execution (PostgreSQL's choice for most of them),
    still 2 ms of its 5 ms. Their best plans are the same index scans whatever the parameters, so
    the plan is made once and kept (plan_cache_mode, for this transaction), under PLANNING, and made
    again after REPLAN_AFTER executions. Lists travel as one array parameter, so a list's length does
    not make a new statement. `prefix` is a statement sent ahead of this one in the same round trip
    (PostgreSQL only).
    """
    if connection.vendor != "postgresql":
        cursor.execute(sql, params)
        return
    name, prepare = _statement(sql)
    uses = _prepared.setdefault(connection.connection, {})
    if uses.get(name, 0) >= REPLAN_AFTER:
        cursor.execute(f"DEALLOCATE {name}")
        del uses[name]
    if name not in uses:
        # A round trip of its own, so that `uses` knows whether it exists whatever fails next.
        cursor.execute(prepare)
        uses[name] = 0
    uses[name] += 1
    execute = f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}"
    cursor.execute(f"{PLANNING_SQL}{prefix}{execute}", params)


def restoring() -> str:
    """SQL columns that put the PLANNING settings back to this connection's values when a statement
    runs (it was planned under PLANNING already). The values are read once per connection."""
    values = _reset_values.get(connection.connection)
    if values is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name, reset_val FROM pg_settings WHERE name = ANY(%s)", [list(PLANNING)])
            values = _reset_values.setdefault(connection.connection, dict(cursor.fetchall()))
    return ", ".join(f"set_config('{name}', '{values[name]}', true)" for name in PLANNING)


def restore_planning() -> None:
    """Put the planner settings back for the rest of the transaction, when the claim ends otherwise
    than by its write (which puts them back itself)."""
    if connection.vendor == "postgresql":
        sql = f"SELECT {restoring()}"
        with connection.cursor() as cursor:
            cursor.execute(sql)


def _order_sql(order: Sequence[str]) -> str:
    return ", ".join(
        f"{_COLUMNS[key.lstrip('-')]} {'DESC' if key.startswith('-') else 'ASC'}" for key in order
    )


def _array(values: Iterable[int]) -> str:
    """An integer list as a PostgreSQL array literal. One text parameter costs the server a single
    array_in; the ARRAY[...] psycopg2 writes for a list is an expression per element to parse."""
    return "{" + ",".join(str(int(value)) for value in values) + "}"


def _among(column: str, ids: Collection[int]) -> tuple[str, list]:
    """`column` is one of `ids`: one array parameter on PostgreSQL, so one statement for any length."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::bigint[])", [_array(ids)]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _json(value) -> list:
    return json.loads(value) if isinstance(value, str) else value


@lru_cache(maxsize=4096)
def _siblings(value: str) -> tuple[int, ...]:
    """A CPU's sibling list; hosts of one shape repeat the same few strings, so parse each once."""
    return tuple(json.loads(value))


_NODE_FREE = (
    'n.host_id, n.id, n."index", n.free_gpus, n.free_cores, n.threads_per_core, '
    "n.memory_mib - n.reserved_memory_mib - n.used_memory_mib, n.hugepages_1g_total - n.hugepages_1g_used, "
    "n.gpu_model_id"
)


def _fits_alone(shape: Shape, node: str) -> tuple[str, list]:
    """The condition, on the counters of NUMA node row `node`, that it can take the whole shape alone."""
    if shape.gpus:
        sells = f"{node}.gpu_model_id = %s AND {node}.free_gpus > 0 AND {node}.free_gpus >= %s"
        params: list = [shape.gpu_model_id, shape.gpus]
    else:
        sells, params = f"{node}.gpu_model_id IS NULL AND {node}.free_cores > 0", []
    condition = (
        f"{sells} AND {node}.free_cores * {node}.threads_per_core >= %s "
        f"AND {node}.memory_mib - {node}.reserved_memory_mib - {node}.used_memory_mib >= %s"
    )
    return condition, [*params, shape.vcpus, shape.memory_mib]


def single_node_candidates(
    *, shape: Shape, region_id: str, order: Sequence[str], exclude: Collection[int], window: int
) -> list[HostFree]:
    """Every node of the hosts of the first `window` candidate nodes, hosts in policy order: nodes
    that can take the whole shape alone, read through the counters and the index
    numanode_gpu_candidates."""
    fits, params = _fits_alone(shape, "c")
    skip = ""
    if exclude:
        among, among_params = _among("c.host_id", exclude)
        skip = f"AND NOT {among}"
        params += among_params
    params += [region_id, shape.host_kind, Host.State.ENABLED]
    order_sql = _order_sql(order)
    with connection.cursor() as cursor:
        # The host is checked in a subquery per node, never joined: a join lets the planner start from
        # the region's hosts, which it does whenever its statistics make the region look small (right
        # after a bulk enrolment), and then every node of the region is read and sorted: 10 s at
        # 10,000 hosts. Checked per node, the only plan that stops early is the one that reads the
        # index numanode_gpu_candidates in order (best fit's) and stops after `window` nodes. The
        # window is a literal so that the planner knows how early.
        _execute(
            cursor,
            f"""
            WITH candidate AS (
                SELECT c.host_id, ROW_NUMBER() OVER (ORDER BY {order_sql}) AS position
                FROM {NODE} c
                WHERE {fits} {skip}
                  AND (SELECT ch.region_id = %s AND ch.kind = %s AND ch.state = %s
                       FROM {HOST} ch WHERE ch.id = c.host_id)
                ORDER BY {order_sql}
                LIMIT {int(window)}
            ), candidate_host AS (
                SELECT host_id, MIN(position) AS position FROM candidate GROUP BY host_id
            )
            SELECT {_NODE_FREE}
            FROM candidate_host JOIN {NODE} n ON n.host_id = candidate_host.host_id
            ORDER BY candidate_host.position, n."index"
            """,
            params,
        )
        return _hosts(cursor.fetchall(), kind=shape.host_kind)


def _hosts(rows: Iterable[tuple], *, kind: str) -> list[HostFree]:
    """HostFree snapshots, in the rows' host order, from (host_id, node_id, index, free_gpus,
    free_cores, threads_per_core, free_memory_mib, free_hugepages_1g, gpu_model_id) rows. The
    hostname is not read: the claim takes it from the row it locks."""
    hosts: dict[int, list[NodeFree]] = {}
    for host_id, *node in rows:
        hosts.setdefault(host_id, []).append(NodeFree(*node))
    return [HostFree(host_id, "", tuple(nodes), kind) for host_id, nodes in hosts.items()]


def lock_first_host(
    *, host_ids: Sequence[int], region_id: str, kind: str, wait: bool, fits_alone: Shape | None = None
) -> "tuple[int, str, HostRows | None] | None":
    """Start an attempt: lock the first host of `host_ids` (in that order) that is still an enabled
    host of the region and kind, not locked by another transaction unless `wait`, and, with
    `fits_alone`, still has a node whose counters can take that shape alone. Returns
    (host_id, hostname, what the host holds or None) or None.

    One statement tries the whole list: SKIP LOCKED with LIMIT 1 locks rows in order and stops at the
    first it gets, so a claim passes over hosts other claims hold at no extra cost. The counters are
    read as of this statement, so a host that a concurrent claim filled since the candidates were read
    is passed over too, instead of being locked, read and found full.

    On PostgreSQL the same statement reads what the host holds (host_rows), and sets the attempt's
    savepoint first; abandon_attempt() rolls back to it, which gives the lock up. That read sees the
    statement's snapshot, which can be older than the lock: a row locked after a wait, or after a
    change committed since the statement began, is the newest version, but the rows read beside it
    are not. Every change a claim reads bumps Host.generation, so the read is returned only when the
    generation locked is the generation read; otherwise None, and the caller reads again (host_rows).
    """
    among, params = _among("h.id", host_ids)
    params += [region_id, kind, Host.State.ENABLED]
    still_fits = ""
    if fits_alone is not None:
        fits, fits_params = _fits_alone(fits_alone, "c")
        still_fits = f"AND EXISTS (SELECT 1 FROM {NODE} c WHERE c.host_id = h.id AND {fits})"
        if connection.vendor == "postgresql":
            # The fit is computed over the host's nodes, not searched for: the only way to the nodes is
            # then their host's key. As EXISTS the planner may search the fit through
            # numanode_gpu_candidates, which holds every selling node of the fleet.
            still_fits = f"AND (SELECT bool_or({fits}) FROM {NODE} c WHERE c.host_id = h.id)"
        params += fits_params
    # The hosts are found by id. Their region, kind and state are compared in a form no index serves
    # (IS NOT DISTINCT FROM; the columns are never null), so that the planner cannot prefer the index on
    # (region, kind, state) and read every host of the region, as it does when its statistics are stale.
    same = "(h.region_id, h.kind, h.state) IS NOT DISTINCT FROM (%s, %s, %s)"
    if connection.vendor != "postgresql":
        same = "h.region_id = %s AND h.kind = %s AND h.state = %s"
    candidates = f"{among} AND {same} {still_fits}"
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":  # No row locks: SQLite serialises writers on the database.
            # Positions are literals: as parameters they would be typed text.
            order = "CASE h.id " + " ".join(f"WHEN %s THEN {n}" for n in range(len(host_ids))) + " END"
            _execute(
                cursor,
                f"SELECT h.id, h.hostname FROM {HOST} h WHERE {candidates} ORDER BY {order} LIMIT 1",
                [*params, *host_ids],
            )
            row = cursor.fetchone()
            return None if row is None else (row[0], row[1], None)
        lock = "FOR UPDATE OF h" if wait else "FOR UPDATE OF h SKIP LOCKED"
        _execute(
            cursor,
            f"""
            WITH locked AS MATERIALIZED (
                SELECT h.id, h.hostname, h.generation FROM {HOST} h WHERE {candidates}
                ORDER BY array_position(%s::bigint[], h.id) LIMIT 1 {lock}
            )
            SELECT locked.id, locked.hostname,
                   locked.generation = (SELECT generation FROM {HOST} WHERE id = locked.id),
                   {_host_rows_sql("locked.id")}
            FROM locked
            """,
            [*params, _array(host_ids)],
            prefix=f"SAVEPOINT {_ATTEMPT}; ",
        )
        row = cursor.fetchone()
    if row is None:
        return None
    host_id, hostname, current, *held = row
    return host_id, hostname, _host_rows_from(*held) if current else None


def abandon_attempt() -> None:
    """Give up the host the attempt locked (PostgreSQL). An abandoned attempt has written nothing."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {_ATTEMPT}")


@dataclass
class LockedNode:
    """A node's row read under the host lock."""

    node_id: int
    index: int
    free_memory_mib: int
    free_hugepages_1g: int
    gpu_model_id: int | None
    free_gpus: int
    free_cores: int
    allocated_gpus: int
    threads_per_core: int


@dataclass
class HostRows:
    """What a locked host holds, read in one snapshot.

    gpus: (id, numa_node_id, model_id, state, iommu_group, foreign_functions, pci_address).
    cpus: (id, numa_node_id, cpu_id, siblings, reserved).
    busy_gpus, busy_cpus: ids of the GPUs and CPUs in an active allocation.
    """

    nodes: list[LockedNode]
    gpus: list[tuple]
    cpus: list[tuple]
    busy_gpus: set[int]
    busy_cpus: set[int]


_LOCKED_NODE = (
    'id, "index", memory_mib - reserved_memory_mib - used_memory_mib, '
    "hugepages_1g_total - hugepages_1g_used, gpu_model_id, free_gpus, free_cores, allocated_gpus, "
    "threads_per_core"
)
_GPU_ROW = "id, numa_node_id, model_id, state, iommu_group, foreign_functions, pci_address"
_CPU_ROW = "id, numa_node_id, cpu_id, siblings, reserved"


def _busy(table: str, column: str, *, host: str, postgresql: bool) -> str:
    """Ids in `column` of the `table` rows of the active allocations of host `host` (SQL).

    The allocations are found through index allocation_active_by_host, then their rows by allocation:
    a path whose cost does not grow with the fleet. On PostgreSQL the allocation ids are computed
    first, once (ARRAY of a subquery), so that even a plan made when the tables were small and kept
    (see _execute) costs at most one scan of the table, never a scan per row of another. The rows of
    an active allocation are all active (they are released with it), and saying so again invites the
    planner to intersect with the partial unique indexes, which hold every active row of the fleet.
    """
    active = f"SELECT id FROM {ALLOCATION} WHERE host_id = {host} AND released_at IS NULL"
    if postgresql:
        return f"SELECT {column} FROM {table} WHERE allocation_id = ANY(ARRAY({active}))"
    return f"SELECT {column} FROM {table} WHERE allocation_id IN ({active})"


def _host_rows_sql(host: str) -> str:
    """host_rows as five PostgreSQL columns for host `host` (SQL): rows as JSON, busy ids as arrays."""
    return f"""
        (SELECT json_agg(json_build_array({_LOCKED_NODE}) ORDER BY "index")
           FROM {NODE} WHERE host_id = {host}),
        (SELECT json_agg(json_build_array({_GPU_ROW})) FROM {GPU} WHERE host_id = {host}),
        (SELECT json_agg(json_build_array({_CPU_ROW})) FROM {CPU} WHERE host_id = {host}),
        ARRAY({_busy(ALLOCATED_GPU, "gpu_id", host=host, postgresql=True)}),
        ARRAY({_busy(ALLOCATED_CPU, "cpu_id", host=host, postgresql=True)})"""


def _host_rows_from(nodes, gpus, cpus, busy_gpus, busy_cpus) -> HostRows:
    return HostRows(
        nodes=[LockedNode(*node) for node in nodes or ()],
        gpus=[tuple(gpu) for gpu in gpus or ()],
        cpus=[
            (row[0], row[1], row[2], _siblings(row[3]) if isinstance(row[3], str) else tuple(row[3]), row[4])
            for row in cpus or ()
        ],
        busy_gpus=set(busy_gpus or ()),
        busy_cpus=set(busy_cpus or ()),
    )


def host_rows(*, host_id: int) -> HostRows:
    """Everything a claim needs of one host: its nodes, GPUs, CPUs and which of them are taken."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement: one snapshot, one round trip
            _execute(cursor, f"SELECT {_host_rows_sql('%s')}", [host_id] * 5)
            return _host_rows_from(*cursor.fetchone())
        _execute(cursor, f'SELECT {_LOCKED_NODE} FROM {NODE} WHERE host_id = %s ORDER BY "index"', [host_id])
        nodes = cursor.fetchall()
        _execute(cursor, f"SELECT {_GPU_ROW} FROM {GPU} WHERE host_id = %s", [host_id])
        gpus = [(*row[:5], _json(row[5]), row[6]) for row in cursor.fetchall()]
        _execute(cursor, f"SELECT {_CPU_ROW} FROM {CPU} WHERE host_id = %s", [host_id])
        cpus = cursor.fetchall()
        _execute(cursor, _busy(ALLOCATED_GPU, "gpu_id", host="%s", postgresql=False), [host_id])
        busy_gpus = [row[0] for row in cursor.fetchall()]
        _execute(cursor, _busy(ALLOCATED_CPU, "cpu_id", host="%s", postgresql=False), [host_id])
        busy_cpus = [row[0] for row in cursor.fetchall()]
    return _host_rows_from(nodes, gpus, cpus, busy_gpus, busy_cpus)


class NodeCounters(NamedTuple):
    """A node's counters after a claim; memory and 1G pages are what the claim takes there."""

    node_id: int
    free_gpus: int
    allocated_gpus: int
    free_cores: int
    threads_per_core: int
    memory_mib: int
    hugepages_1g: int


def write_allocation(
    *,
    instance: Instance,
    host_id: int,
    plan_id: str,
    gpu_ids: Sequence[int],
    cpus: Sequence[tuple[int, int]],
    memory: Sequence[tuple[int, int, int]],
    counters: Sequence[NodeCounters],
) -> Allocation:
    """Insert the allocation and its rows, set the node counters, bump the host generation and point
    the instance at the host. `cpus` are (HostCpu id, vCPU); `memory` (node id, MiB, 1G pages)."""
    now = timezone.now()
    write = _write_postgresql if connection.vendor == "postgresql" else _write_statements
    allocation_id = write(
        instance_id=instance.pk,
        host_id=host_id,
        plan_id=plan_id,
        now=now,
        gpu_ids=gpu_ids,
        cpus=cpus,
        memory=memory,
        counters=counters,
    )
    instance.host_id, instance.updated = host_id, now
    allocation = Allocation(
        pk=allocation_id, instance=instance, host_id=host_id, instance_type_id=plan_id, created_at=now
    )
    allocation._state.adding, allocation._state.db = False, connection.alias
    return allocation


def _columns(rows: Sequence[tuple], width: int) -> list[list]:
    return [[row[i] for row in rows] for i in range(width)]


def _write_postgresql(*, instance_id, host_id, plan_id, now, gpu_ids, cpus, memory, counters) -> int:
    """Every write of a claim as one statement: the lists travel as arrays, so one prepared statement
    serves every plan size."""
    cpu_ids, vcpus = _columns(cpus, 2)
    memory_nodes, memory_mib, hugepages = _columns(memory, 3)
    node_ids, free_gpus, allocated_gpus, free_cores, threads, used_mib, used_pages = _columns(counters, 7)
    restore = restoring()
    with connection.cursor() as cursor:
        _execute(
            cursor,
            f"""
            WITH allocation AS (
                INSERT INTO {ALLOCATION} (instance_id, host_id, instance_type_id, created_at, released_at)
                VALUES (%s, %s, %s, %s, NULL) RETURNING id
            ), gpus AS (
                INSERT INTO {ALLOCATED_GPU} (allocation_id, gpu_id)
                SELECT allocation.id, gpu.id FROM allocation, UNNEST(%s::bigint[]) AS gpu(id)
            ), cpus AS (
                INSERT INTO {ALLOCATED_CPU} (allocation_id, cpu_id, vcpu)
                SELECT allocation.id, cpu.id, cpu.vcpu
                FROM allocation, UNNEST(%s::bigint[], %s::integer[]) AS cpu(id, vcpu)
            ), memory AS (
                INSERT INTO {ALLOCATED_MEMORY} (allocation_id, numa_node_id, memory_mib, hugepages_1g)
                SELECT allocation.id, share.node_id, share.mib, share.pages
                FROM allocation,
                     UNNEST(%s::bigint[], %s::bigint[], %s::integer[]) AS share(node_id, mib, pages)
            ), nodes AS (
                UPDATE {NODE} n SET free_gpus = new.free_gpus, allocated_gpus = new.allocated_gpus,
                    free_cores = new.free_cores, threads_per_core = new.threads,
                    used_memory_mib = n.used_memory_mib + new.mib,
                    hugepages_1g_used = n.hugepages_1g_used + new.pages
                FROM UNNEST(%s::bigint[], %s::integer[], %s::integer[], %s::integer[], %s::integer[],
                            %s::bigint[], %s::integer[])
                    AS new(id, free_gpus, allocated_gpus, free_cores, threads, mib, pages)
                WHERE n.id = new.id
            ), host AS (
                UPDATE {HOST} SET generation = generation + 1 WHERE id = %s
            ), instance AS (
                UPDATE {INSTANCE} SET host_id = %s, updated = %s WHERE id = %s
            )
            SELECT id, {restore} FROM allocation
            """,
            [
                *(instance_id, host_id, plan_id, now),
                _array(gpu_ids),
                *map(_array, (cpu_ids, vcpus)),
                *map(_array, (memory_nodes, memory_mib, hugepages)),
                *map(
                    _array, (node_ids, free_gpus, allocated_gpus, free_cores, threads, used_mib, used_pages)
                ),
                host_id,
                *(host_id, now, instance_id),
            ],
        )
        return cursor.fetchone()[0]


def _values(rows: Sequence[tuple]) -> tuple[str, list]:
    width = len(rows[0])
    marks = ", ".join(["(" + ", ".join(["%s"] * width) + ")"] * len(rows))
    return marks, [value for row in rows for value in row]


def _write_statements(*, instance_id, host_id, plan_id, now, gpu_ids, cpus, memory, counters) -> int:
    """The same writes as plain statements, for databases without data-modifying CTEs."""
    with connection.cursor() as cursor:
        _execute(
            cursor,
            f"INSERT INTO {ALLOCATION} (instance_id, host_id, instance_type_id, created_at, released_at) "
            f"VALUES (%s, %s, %s, %s, NULL) RETURNING id",
            [instance_id, host_id, plan_id, now],
        )
        allocation_id = cursor.fetchone()[0]
        if gpu_ids:
            marks, params = _values([(allocation_id, gpu_id) for gpu_id in gpu_ids])
            _execute(cursor, f"INSERT INTO {ALLOCATED_GPU} (allocation_id, gpu_id) VALUES {marks}", params)
        marks, params = _values([(allocation_id, cpu_id, vcpu) for cpu_id, vcpu in cpus])
        _execute(cursor, f"INSERT INTO {ALLOCATED_CPU} (allocation_id, cpu_id, vcpu) VALUES {marks}", params)
        marks, params = _values([(allocation_id, *row) for row in memory])
        columns = "allocation_id, numa_node_id, memory_mib, hugepages_1g"
        _execute(cursor, f"INSERT INTO {ALLOCATED_MEMORY} ({columns}) VALUES {marks}", params)
        for node in counters:
            _execute(
                cursor,
                f"UPDATE {NODE} SET free_gpus = %s, allocated_gpus = %s, free_cores = %s, "
                "threads_per_core = %s, used_memory_mib = used_memory_mib + %s, "
                "hugepages_1g_used = hugepages_1g_used + %s WHERE id = %s",
                [*node[1:], node.node_id],
            )
        _execute(cursor, f"UPDATE {HOST} SET generation = generation + 1 WHERE id = %s", [host_id])
        _execute(
            cursor,
            f"UPDATE {INSTANCE} SET host_id = %s, updated = %s WHERE id = %s",
            [host_id, now, instance_id],
        )
    return allocation_id
