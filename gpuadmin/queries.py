"""Query helpers the request paths share."""

import hashlib
import re
import weakref
from collections.abc import Callable
from functools import lru_cache
from itertools import count

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable, ValuesIterable, get_related_populators


def row_or_none(queryset: QuerySet) -> Model | None:
    """The row of a query on a unique key, or None. `first()` orders the query (by the model's ordering,
    else its primary key); for one row an order means nothing, and compiling it was a tenth of a view's
    CPU."""
    return next(iter(queryset.order_by()[:1]), None)


_SENTINEL_INTS = count(-(2**62), -1)
# psycopg2 connection -> names of the statements PREPAREd on it (a new connection has none).
_prepared_on: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@lru_cache(maxsize=256)
def _statement(sql: str) -> tuple[str, str]:
    """(name, PREPARE text) of Django's SQL: %s placeholders numbered $1, $2, ..., %% a literal %."""
    numbered = count(1)
    name = "gpuadmin_read_" + hashlib.sha1(sql.encode()).hexdigest()[:16]
    body = re.sub(r"%s|%%", lambda m: f"${next(numbered)}" if m.group() == "%s" else "%", sql)
    return name, f"PREPARE {name} AS {body}"


def _execute_prepared(cursor, connection, sql: str, params: list) -> None:
    """Run `sql` as a statement PostgreSQL parsed and planned once on this session: planning a read of a
    few joined rows by key cost PostgreSQL more than running it (half of a view's 0.8 ms a query)."""
    name, prepare = _statement(sql)
    names = _prepared_on.setdefault(connection.connection, set())
    if name not in names:
        cursor.execute(prepare)  # a round trip of its own: `names` knows it exists whatever fails next
        names.add(name)
    cursor.execute(
        f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}", params
    )


class PreparedRead:
    """A read on a request's hot path that Django compiles once per connection rather than at each call.

    `build(**values)` returns the queryset (models, with select_related, or `values()`); it is built
    once with a stand-in for each named value, compiled, and each call then sends the same SQL with the
    real values in the stand-ins' places, and turns rows into models (or dicts) as Django's own
    iterables do: the same converters, `from_db`, the same related-object population. Compiling was
    most of a short read's CPU (filter building, joins, column lists: about 0.6 ms a query on this
    machine against well under 0.1 ms to bind and read).

    `kinds` names each value and its type (int or str), which is all a stand-in needs to pass Django's
    field preparation unchanged. A value must reach the SQL as exactly one parameter, itself: an exact
    lookup on an integer or text column. Anything else (an `__in`, a `LIKE`, a transformed value) is
    refused when the read is first compiled, not answered wrongly.
    """

    def __init__(
        self, build: Callable[..., QuerySet], *, using: str = DEFAULT_DB_ALIAS, **kinds: type
    ) -> None:
        self.build, self.using, self.kinds = build, using, kinds
        # Per connection (a thread's): the converters Django picks are the connection's own.
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def rows(self, **values) -> list:
        """Every row, as models or dicts; the values by the names `kinds` gave."""
        connection = connections[self.using]
        compiled = self._compiled.get(connection)
        if compiled is None:
            compiled = self._compiled.setdefault(connection, self._compile(self.using))
        sql, template, slots, make = compiled
        params = list(template)
        for position, name in slots:
            params[position] = values[name]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                _execute_prepared(cursor, connection, sql, params)
            else:
                cursor.execute(sql, params)
            fetched = cursor.fetchall()
        return make(fetched, connection)

    def first(self, **values):
        """The first row, or None (`build` should slice to one row when one is all it can be)."""
        found = self.rows(**values)
        return found[0] if found else None

    def _compile(self, alias: str):
        stand_ins = {
            name: next(_SENTINEL_INTS) if kind is int else f"\x1fprepared:{name}\x1f"
            for name, kind in self.kinds.items()
        }
        queryset = self.build(**stand_ins).using(alias)
        if queryset._known_related_objects or queryset.query.extra_select:
            raise TypeError("PreparedRead reads plain querysets (no related manager, no extra())")
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        slots = []
        for name, stand_in in stand_ins.items():
            found = [position for position, param in enumerate(params) if param == stand_in]
            if len(found) != 1:
                raise TypeError(f"{name} must reach the SQL as one parameter, as it is (found {len(found)})")
            slots.append((found[0], name))
        select = compiler.select
        converters = compiler.get_converters([column[0] for column in select[: compiler.col_count]])

        def converted(fetched, connection):
            if not converters:
                return fetched
            rows = []
            for row in fetched:
                row = list(row)
                for position, (functions, expression) in converters.items():
                    value = row[position]
                    for function in functions:
                        value = function(value, expression, connection)
                    row[position] = value
                rows.append(row)
            return rows

        if queryset._iterable_class is ValuesIterable:
            names = [*queryset.query.values_select, *queryset.query.annotation_select]

            def make(fetched, connection):
                return [dict(zip(names, row, strict=True)) for row in converted(fetched, connection)]

        elif queryset._iterable_class is ModelIterable:
            klass_info, annotations = compiler.klass_info, compiler.annotation_col_map
            model, fields = klass_info["model"], klass_info["select_fields"]
            start, end = fields[0], fields[-1] + 1
            init_list = [column[0].target.attname for column in select[start:end]]
            populators = get_related_populators(klass_info, select, alias)

            def make(fetched, connection):
                objects = []
                for row in converted(fetched, connection):
                    obj = model.from_db(alias, init_list, row[start:end])
                    for populator in populators:
                        populator.populate(row, obj)
                    for name, position in annotations.items():
                        setattr(obj, name, row[position])
                    objects.append(obj)
                return objects

        else:
            raise TypeError("PreparedRead reads models or values(), not values_list() or other shapes")
        return sql, tuple(params), slots, make
