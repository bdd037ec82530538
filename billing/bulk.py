"""Writes of many rows in a bounded number of statements, whatever the number of rows.

On PostgreSQL an update of N rows is one `UPDATE ... FROM unnest(arrays)`; elsewhere (SQLite, the
demo and the fast tests) Django's `bulk_update`, in batches.
"""

from collections.abc import Sequence

from django.db import connection, models

UPDATE_BATCH = 500


def bulk_set(model: type[models.Model], rows: Sequence[models.Model], fields: list[str]) -> None:
    """Write `fields` of each row, found by its primary key: one statement on PostgreSQL."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(rows, fields, batch_size=UPDATE_BATCH)
        return
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    arrays = [
        [field.get_db_prep_value(getattr(row, field.attname), connection) for row in rows]
        for field in columns
    ]
    unnest = ", ".join(f"%s::{field.db_type(connection)}[]" for field in columns)
    names = ", ".join(connection.ops.quote_name(field.column) for field in columns)
    assignments = ", ".join(
        f"{connection.ops.quote_name(field.column)} = v.{connection.ops.quote_name(field.column)}"
        for field in columns[1:]
    )
    pk = connection.ops.quote_name(meta.pk.column)
    sql = (
        f"UPDATE {connection.ops.quote_name(meta.db_table)} AS t SET {assignments} "
        f"FROM unnest({unnest}) AS v({names}) WHERE t.{pk} = v.{pk}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
