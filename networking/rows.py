"""The address claim as one statement on PostgreSQL: find, lock, hold and assign in a single round trip.

The ORM path (networking.services._first_free, then the address's update and the assignment's insert)
is four statements and most of the claim's CPU is Django compiling them. This statement does the same
in the same order, pool by pool in the order of index ipv4address_unheld_by_pool (pool, id), each pool
stopped at its first free row, passing over rows other transactions hold (SKIP LOCKED). When it finds
nothing the caller takes the ORM path, which also waits for held rows before it says "exhausted".
"""

from datetime import datetime

from django.db import connection

# The lateral read is the ORM path's `_first_free(..., wait=False)`: free_addresses()'s conditions on one
# pool, lowest id first, locked or passed over. The two writes change what address_claim's ORM path
# changes: the holder, its start and the cool-down, and a new active assignment.
CLAIM_SQL = """
WITH picked AS (
    SELECT free.id, free.pool_id, host(free.address) AS address
    FROM (
        SELECT id FROM networking_ipv4pool WHERE region_id = %(region)s ORDER BY id OFFSET 0
    ) pool
    CROSS JOIN LATERAL (
        SELECT address.id, address.pool_id, address.address
        FROM networking_ipv4address address
        WHERE address.pool_id = pool.id
          AND address.holder_id IS NULL
          AND NOT address.reserved
          AND (address.free_after IS NULL OR address.free_after <= %(now)s)
        ORDER BY address.id
        LIMIT 1
        FOR UPDATE OF address SKIP LOCKED
    ) free
    ORDER BY pool.id
    LIMIT 1
),
held AS (
    UPDATE networking_ipv4address address
    SET holder_id = %(instance)s, held_since = %(now)s, free_after = NULL
    FROM picked
    WHERE address.id = picked.id
    RETURNING address.id
),
assigned AS (
    INSERT INTO networking_ipv4assignment (address_id, instance_id, assigned_at, released_at)
    SELECT held.id, %(instance)s, %(now)s, NULL FROM held
    RETURNING address_id
)
SELECT picked.id, picked.pool_id, picked.address FROM picked JOIN assigned ON assigned.address_id = picked.id
"""


def claim_first_free(*, region_id: str, instance_id: int, now: datetime) -> tuple[int, int, str] | None:
    """(id, pool id, address) of the address now held by `instance_id` and assigned to it, or None when
    no pool of the region has a free address that no other transaction holds. PostgreSQL only."""
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, {"region": region_id, "instance": instance_id, "now": now})
        return cursor.fetchone()
