"""The claim's hot path in plain SQL: a claim must cost a few milliseconds at 10,000 hosts.

Building and compiling ORM querysets cost more CPU than PostgreSQL spends running these statements;
with 16 clients on two cores that was the limit. Each statement here is one the ORM would write,
portable between PostgreSQL and SQLite, and covered by the claim tests on both. Everything that is
not on the path of every claim (release, move, recount, rejection wording) stays in the ORM.
"""

import hashlib
import json
import re
import weakref
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from django.db import connection
from django.utils import timezone

from inventory.fit import GPU_HOST, HostFree, NodeFree, Shape
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


_prepared: "weakref.WeakKeyDictionary[object, set[str]]" = weakref.WeakKeyDictionary()


def _execute(cursor, sql: str, params: Sequence = ()) -> None:
    """Run `sql` (%s placeholders); on PostgreSQL as a statement prepared once per connection.

    Planning is most of what these short statements cost PostgreSQL (measured: 3.3 ms unprepared
    against 0.8 ms prepared for a claim's reads). Statements whose lists differ in length are
    different statements; a claim uses a few dozen shapes, so a connection prepares a few dozen.
    """
    if connection.vendor != "postgresql":
        cursor.execute(sql, params)
        return
    names = _prepared.setdefault(connection.connection, set())
    name = "gpuadmin_claim_" + hashlib.sha1(sql.encode()).hexdigest()[:16]
    if name not in names:
        numbered = iter(range(1, sql.count("%s") + 1))
        cursor.execute(f"PREPARE {name} AS " + re.sub(r"%s", lambda _: f"${next(numbered)}", sql))
        names.add(name)
    cursor.execute(
        f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}", params
    )


def _order_sql(order: Sequence[str]) -> str:
    return ", ".join(
        f"{_COLUMNS[key.lstrip('-')]} {'DESC' if key.startswith('-') else 'ASC'}" for key in order
    )


def _json(value) -> list:
    return json.loads(value) if isinstance(value, str) else value


@lru_cache(maxsize=4096)
def _siblings(value: str) -> tuple[int, ...]:
    """A CPU's sibling list; hosts of one shape repeat the same few strings, so parse each once."""
    return tuple(json.loads(value))


def single_node_candidates(
    *, shape: Shape, region_id: str, order: Sequence[str], exclude: Collection[int], window: int
) -> list[HostFree]:
    """Every node of the first `window` candidate nodes' hosts, in policy order; nodes that can take
    the whole shape alone, read through the counters and the index numanode_gpu_candidates."""
    params: list = [region_id, shape.host_kind, Host.State.ENABLED]
    if shape.gpus:
        sells = "c.gpu_model_id = %s AND c.free_gpus > 0 AND c.free_gpus >= %s"
        params += [shape.gpu_model_id, shape.gpus]
    else:
        sells = "c.gpu_model_id IS NULL AND c.free_cores > 0"
    params += [shape.vcpus, shape.memory_mib]
    skip = ""
    if exclude:
        skip = f"AND c.host_id NOT IN ({', '.join(['%s'] * len(exclude))})"
        params += list(exclude)
    params.append(window)
    # Two plain statements plan faster than one with a subquery, and planning is most of their cost.
    with connection.cursor() as cursor:
        _execute(
            cursor,
            f"""
            SELECT c.host_id FROM {NODE} c JOIN {HOST} ch ON ch.id = c.host_id
            WHERE ch.region_id = %s AND ch.kind = %s AND ch.state = %s AND {sells}
              AND c.free_cores * c.threads_per_core >= %s
              AND c.memory_mib - c.reserved_memory_mib - c.used_memory_mib >= %s
              {skip}
            ORDER BY {_order_sql(order)}
            LIMIT %s
            """,
            params,
        )
        host_ids = list(dict.fromkeys(row[0] for row in cursor.fetchall()))
        return nodes_of(cursor, host_ids, kind=shape.host_kind)


def nodes_of(cursor, host_ids: Sequence[int], *, kind: str) -> list[HostFree]:
    """Every node of the given hosts, as HostFree snapshots in the order of `host_ids`."""
    if not host_ids:
        return []
    _execute(
        cursor,
        f"""
        SELECT host_id, '', id, "index", free_gpus, free_cores, threads_per_core,
               memory_mib - reserved_memory_mib - used_memory_mib, hugepages_1g_total - hugepages_1g_used,
               gpu_model_id
        FROM {NODE} WHERE host_id IN ({", ".join(["%s"] * len(host_ids))}) ORDER BY host_id, "index"
        """,
        list(host_ids),
    )
    return hosts_from_rows(cursor.fetchall(), kind=kind)


def hosts_from_rows(rows: Iterable[tuple], *, kind: str = GPU_HOST) -> list[HostFree]:
    """HostFree snapshots from (host_id, hostname, node_id, index, free_gpus, free_cores,
    threads_per_core, free_memory_mib, free_hugepages_1g, gpu_model_id) rows grouped by host."""
    hosts: dict[int, tuple[str, list[NodeFree]]] = {}
    for host_id, hostname, node_id, index, gpus, cores, tpc, memory, hugepages, model in rows:
        node = NodeFree(node_id, index, gpus, cores, tpc, memory, hugepages, model)
        hosts.setdefault(host_id, (hostname, []))[1].append(node)
    return [HostFree(host_id, name, tuple(nodes), kind) for host_id, (name, nodes) in hosts.items()]


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


def lock_first_host(
    *, host_ids: Sequence[int], region_id: str, kind: str, wait: bool
) -> tuple[int, str, list[LockedNode]] | None:
    """Lock the first host of `host_ids` (in that order) that is still an enabled host of the region
    and kind and, unless `wait`, not locked by another transaction; then read its nodes.

    One statement tries the whole list: SKIP LOCKED with LIMIT 1 locks rows in order and stops at the
    first it gets, so a claim passes over hosts other claims hold at no extra cost. Returns
    (host_id, hostname, nodes) or None. The nodes are read by a second statement on purpose: a row
    locked after a wait is re-read at its newest version, but rows joined to it are not.
    """
    features = connection.features
    lock = ""
    if features.has_select_for_update:
        lock = " FOR UPDATE"
        if not wait and features.has_select_for_update_skip_locked:
            lock += " SKIP LOCKED"
    ids = ", ".join(["%s"] * len(host_ids))
    # Positions are literals: as parameters of a prepared statement they would be typed text.
    rank = " ".join(f"WHEN %s THEN {position}" for position in range(len(host_ids)))
    params = [*host_ids, region_id, kind, Host.State.ENABLED, *host_ids]
    with connection.cursor() as cursor:
        _execute(
            cursor,
            f"SELECT id, hostname FROM {HOST} WHERE id IN ({ids}) AND region_id = %s AND kind = %s "
            f"AND state = %s ORDER BY CASE id {rank} END LIMIT 1{lock}",
            params,
        )
        row = cursor.fetchone()
        if row is None:
            return None
        _execute(
            cursor,
            f"""
            SELECT id, "index", memory_mib - reserved_memory_mib - used_memory_mib,
                   hugepages_1g_total - hugepages_1g_used, gpu_model_id, free_gpus, free_cores,
                   allocated_gpus, threads_per_core
            FROM {NODE} WHERE host_id = %s ORDER BY "index"
            """,
            [row[0]],
        )
        return row[0], row[1], [LockedNode(*node) for node in cursor.fetchall()]


def host_devices(*, host_id: int) -> tuple[list[tuple], list[tuple], set[int], set[int]]:
    """(GPU rows, CPU rows, ids of GPUs and of CPUs in an active allocation) of one host.

    GPU rows: (id, numa_node_id, model_id, state, iommu_group, foreign_functions, pci_address).
    CPU rows: (id, numa_node_id, cpu_id, siblings, reserved).
    The busy ids are found through the host's active allocations (index allocation_active_by_host), a
    path whose cost does not grow with the fleet. The rows of an active allocation are all active (they
    are released with it), and saying so again invites the planner to intersect with the partial
    unique indexes, which hold every active row of the fleet.
    """
    with connection.cursor() as cursor:
        _execute(
            cursor,
            f"SELECT id, numa_node_id, model_id, state, iommu_group, foreign_functions, pci_address "
            f"FROM {GPU} WHERE host_id = %s",
            [host_id],
        )
        gpus = [(*row[:5], _json(row[5]), row[6]) for row in cursor.fetchall()]
        _execute(
            cursor,
            f"SELECT id, numa_node_id, cpu_id, siblings, reserved FROM {CPU} WHERE host_id = %s",
            [host_id],
        )
        cpus = [
            (row[0], row[1], row[2], _siblings(row[3]) if isinstance(row[3], str) else tuple(row[3]), row[4])
            for row in cursor.fetchall()
        ]
        _execute(
            cursor,
            f"""
            SELECT 0, ag.gpu_id FROM {ALLOCATED_GPU} ag JOIN {ALLOCATION} a ON a.id = ag.allocation_id
            WHERE a.host_id = %s AND a.released_at IS NULL
            UNION ALL
            SELECT 1, ac.cpu_id FROM {ALLOCATED_CPU} ac JOIN {ALLOCATION} a ON a.id = ac.allocation_id
            WHERE a.host_id = %s AND a.released_at IS NULL
            """,
            [host_id, host_id],
        )
        busy: tuple[set[int], set[int]] = (set(), set())
        for kind, row_id in cursor.fetchall():
            busy[kind].add(row_id)
    return gpus, cpus, busy[0], busy[1]


def _values(rows: Sequence[tuple]) -> tuple[str, list]:
    width = len(rows[0])
    marks = ", ".join(["(" + ", ".join(["%s"] * width) + ")"] * len(rows))
    return marks, [value for row in rows for value in row]


def write_allocation(
    *,
    instance: Instance,
    host_id: int,
    plan_id: str,
    gpu_ids: Sequence[int],
    cpus: Sequence[tuple[int, int]],
    memory: Sequence[tuple[int, int, int]],
    counters: Sequence[tuple[int, dict]],
) -> Allocation:
    """Insert the allocation and its rows, set the node counters, bump the host generation and point
    the instance at the host. `cpus` are (HostCpu id, vCPU); `memory` (node id, MiB, 1G pages);
    `counters` (node id, {column: value or (column, delta)})."""
    now = timezone.now()
    with connection.cursor() as cursor:
        _execute(
            cursor,
            f"INSERT INTO {ALLOCATION} (instance_id, host_id, instance_type_id, created_at, released_at) "
            f"VALUES (%s, %s, %s, %s, NULL) RETURNING id",
            [instance.pk, host_id, plan_id, now],
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
        for node_id, values in counters:
            assignments, params = [], []
            for column, value in values.items():
                if isinstance(value, tuple):  # (column, delta): relative to the row, as F() would be
                    assignments.append(f"{column} = {value[0]} + %s")
                    params.append(value[1])
                else:
                    assignments.append(f"{column} = %s")
                    params.append(value)
            _execute(cursor, f"UPDATE {NODE} SET {', '.join(assignments)} WHERE id = %s", [*params, node_id])
        _execute(cursor, f"UPDATE {HOST} SET generation = generation + 1 WHERE id = %s", [host_id])
        _execute(
            cursor,
            f"UPDATE {INSTANCE} SET host_id = %s, updated = %s WHERE id = %s",
            [host_id, now, instance.pk],
        )
    instance.host_id, instance.updated = host_id, now
    allocation = Allocation(
        pk=allocation_id, instance=instance, host_id=host_id, instance_type_id=plan_id, created_at=now
    )
    allocation._state.adding, allocation._state.db = False, connection.alias
    return allocation
