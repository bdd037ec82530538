"""Planner statistics for the tables a claim plans on, gathered again after a bulk change.

The claim's statements keep one generic plan per connection (provisioning.claims.rows), made on the
statistics ANALYZE last gathered; PostgreSQL plans every prepared statement again once their tables are
analysed. Right after thousands of hosts arrive at once those statistics describe the fleet before
them, until autovacuum gets there (a minute later, or never where it is off). So whatever adds or
re-reads hosts in bulk analyses the inventory tables when it is done: seconds for 10,000 hosts.
"""

from django.db import connection

from inventory.models import GpuDevice, Host, HostCpu, NumaNode

INVENTORY_MODELS = (Host, NumaNode, HostCpu, GpuDevice)


def inventory_statistics_refresh() -> list[str]:
    """ANALYZE the host, node, CPU and GPU tables (PostgreSQL; elsewhere nothing). Returns the tables."""
    if connection.vendor != "postgresql":
        return []
    tables = [model._meta.db_table for model in INVENTORY_MODELS]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(connection.ops.quote_name(t) for t in tables)}")
    return tables
