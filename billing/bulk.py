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


def bulk_insert(
    model: type[models.Model],
    columns: dict[str, list],
    *,
    ignore_conflicts: bool = False,
    returning: Sequence[str] = (),
) -> list[tuple]:
    """Insert rows given as one list of values per field (attnames: `invoice_id`), and return the
    `returning` fields of the rows inserted. On PostgreSQL one `INSERT ... SELECT FROM unnest(...)`
    for any number of rows, with values passed as they are (Decimal, datetime, str: the database
    checks types, lengths and constraints); elsewhere Django's bulk_create, in batches, and the
    rows read back."""
    names = list(columns)
    count = len(columns[names[0]]) if names else 0
    if not count:
        return []
    meta = model._meta
    fields = [meta.get_field(name) for name in names]  # by name or attname
    if connection.vendor != "postgresql":
        rows = [model(**{name: columns[name][i] for name in names}) for i in range(count)]
        model.objects.bulk_create(rows, batch_size=UPDATE_BATCH, ignore_conflicts=ignore_conflicts)
        if not returning:
            return []
        if all(row.pk is not None for row in rows):
            return [tuple(getattr(row, name) for name in returning) for row in rows]
        return []  # ignore_conflicts gives no ids here: the caller reads the rows back
    quote = connection.ops.quote_name
    target = ", ".join(quote(field.column) for field in fields)
    types = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
    sql = f"INSERT INTO {quote(meta.db_table)} ({target}) SELECT * FROM unnest({types})"
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(quote(meta.get_field(name).column) for name in returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, [columns[name] for name in names])
        return cursor.fetchall() if returning else []
