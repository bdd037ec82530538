"""Linode's X-Filter header: a JSON object of field conditions, turned into a queryset filter.

    {"label": "web-1"}                                  equality
    {"created": {"+gte": "2026-01-01T00:00:00"}}        +gt +gte +lt +lte +neq +contains
    {"+or": [{"region": "us-east"}, {"region": "ap-west"}]}, "+and": [...]
    {"+order_by": "created", "+order": "desc"}
    {"entity.id": 12}                                   dotted keys name nested fields

Each list view declares which keys it accepts and what they mean in the database. A key it does not
declare is refused with a 400 naming it (a silently ignored filter would return rows the client did
not ask for); unknown operators and top-level `+` keys such as `+limit` are ignored, as Linode does.
The header is JSON read by gpuadmin.api.inputs' rules (no control characters, finite numbers only), and
values are checked against their column's range: the database is never handed what it would refuse.
"""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Q
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend

from gpuadmin.api.inputs import load_json
from gpuadmin.api.limits import MAX_FILTER_LENGTH

HEADER = "X-Filter"
MAX_HEADER_LENGTH = MAX_FILTER_LENGTH
MAX_DEPTH = 8
# Amounts are compared with money columns (12 digits, 2 decimals): anything this large matches nothing
# a column can hold, and PostgreSQL would refuse to compare a numeric of a million digits.
MAX_AMOUNT = Decimal(10) ** 15
COMPARISONS = {"+gt": "gt", "+gte": "gte", "+lt": "lt", "+lte": "lte"}
NOTHING = Q(pk__in=[])
INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")  # ASCII digits only: str.isdigit() also takes "²" and "１"


class FilterError(ValidationError):
    def __init__(self, reason: str) -> None:
        super().__init__({HEADER: [reason]})


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("a string")
    return str(value)


def _integer(value: Any) -> int:
    if isinstance(value, str) and INTEGER_TEXT.fullmatch(value.strip()):
        value = int(value)
    # Outside a bigint the database raises instead of answering, so such a value is refused here.
    if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
        raise ValueError("an integer")
    return value


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("a number") from None
    if not number.is_finite() or abs(number) >= MAX_AMOUNT:
        raise ValueError(f"a finite number below {MAX_AMOUNT:.0e}")
    return number


def boolean_value(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("true or false")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str):
        for fmt in ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d"):
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
    raise ValueError("a timestamp like 2026-01-31T23:59:59")


@dataclass(frozen=True)
class Field:
    """What a filter key means: a database path and how to read a JSON value for it.

    `kind` is "scalar", "list" (a JSON list column such as tags: equality means "has this element"),
    or "constant" (every row has `constant`, e.g. events' entity.type is always "linode").
    """

    lookup: str
    parse: Callable[[Any], Any] = _text
    kind: str = "scalar"
    constant: Any = None
    text: bool = False

    def condition(self, operator: str | None, raw: Any, key: str) -> Q | None:
        if raw is None and self.kind == "scalar" and operator in (None, "+neq"):
            condition = Q(**{f"{self.lookup}__isnull": True})
            return ~condition if operator == "+neq" else condition
        try:
            value = self.parse(raw)
        except ValueError as exc:
            raise FilterError(f"{key} must be {exc}") from None
        if self.kind == "constant":
            matches = value == self.constant
            if operator in (None, "+contains"):
                return Q() if matches or (operator and str(value) in str(self.constant)) else NOTHING
            if operator == "+neq":
                return NOTHING if matches else Q()
            raise FilterError(f"{key} cannot be compared with {operator}")
        if self.kind == "list":
            # The column holds a JSON list of strings: match the quoted element inside its text.
            if operator in (None, "+neq"):
                condition = Q(**{f"{self.lookup}__icontains": json.dumps(value)})
                return ~condition if operator == "+neq" else condition
            if operator == "+contains":
                return Q(**{f"{self.lookup}__icontains": value})
            raise FilterError(f"{key} cannot be compared with {operator}")
        if operator is None:
            return Q(**{self.lookup: value})
        if operator == "+neq":
            return ~Q(**{self.lookup: value})
        if operator == "+contains":
            if not self.text:
                raise FilterError(f"{key} cannot be searched with +contains")
            # A foreign key's column (region_id) takes no text lookup: search the key on the joined row.
            column = f"{self.lookup[:-3]}__pk" if self.lookup.endswith("_id") else self.lookup
            return Q(**{f"{column}__icontains": value})
        if operator in COMPARISONS:
            return Q(**{f"{self.lookup}__{COMPARISONS[operator]}": value})
        return None  # an operator Linode may add later: ignored, like unknown top-level keys

    @property
    def orderable(self) -> bool:
        return self.kind == "scalar"


def text(lookup: str) -> Field:
    return Field(lookup, _text, text=True)


def integer(lookup: str) -> Field:
    return Field(lookup, _integer)


def decimal(lookup: str) -> Field:
    return Field(lookup, _decimal)


def boolean(lookup: str) -> Field:
    return Field(lookup, boolean_value)


def timestamp(lookup: str) -> Field:
    return Field(lookup, _timestamp)


def tag_list(lookup: str) -> Field:
    return Field(lookup, _text, kind="list")


def constant(value: Any, parse: Callable[[Any], Any] = _text) -> Field:
    return Field("", parse, kind="constant", constant=value)


@dataclass(frozen=True)
class ParsedFilter:
    condition: Q
    ordering: list[str] | None


def parse_filter(header: str | None, fields: Mapping[str, Field]) -> ParsedFilter:
    if header is None or header.strip() == "":
        return ParsedFilter(Q(), None)
    if len(header) > MAX_HEADER_LENGTH:
        raise FilterError(f"{HEADER} is longer than {MAX_HEADER_LENGTH} characters")
    document = load_json(
        header, what=HEADER, field=HEADER, not_json=f"{HEADER} is not valid JSON", explain=False
    )
    if not isinstance(document, dict):
        raise FilterError(f"{HEADER} must be a JSON object")
    condition = _conditions(document, fields, depth=0)
    return ParsedFilter(condition, _ordering(document, fields))


def _conditions(document: dict, fields: Mapping[str, Field], depth: int) -> Q:
    if depth > MAX_DEPTH:
        raise FilterError(f"{HEADER} is nested deeper than {MAX_DEPTH} levels")
    combined = Q()
    for key, value in document.items():
        if key in ("+and", "+or"):
            if not isinstance(value, list) or not all(isinstance(part, dict) for part in value):
                raise FilterError(f"{key} takes a list of objects")
            parts = [_conditions(part, fields, depth + 1) for part in value]
            if parts:
                joined = parts[0]
                for part in parts[1:]:
                    joined = (joined | part) if key == "+or" else (joined & part)
                combined &= joined
        elif key.startswith("+"):
            continue
        elif key not in fields:
            raise FilterError(f"Cannot filter on {key}")
        else:
            combined &= _field_condition(key, value, fields[key])
    return combined


def _field_condition(key: str, value: Any, field: Field) -> Q:
    if isinstance(value, dict):
        combined = Q()
        for operator, operand in value.items():
            if not isinstance(operator, str) or not operator.startswith("+"):
                raise FilterError(f"{key}: {operator!r} is not an operator such as +gte")
            condition = field.condition(operator, operand, key)
            if condition is not None:
                combined &= condition
        return combined
    if isinstance(value, list):
        raise FilterError(f"{key} takes a value or an object of operators, not a list")
    return field.condition(None, value, key)


def _ordering(document: dict, fields: Mapping[str, Field]) -> list[str] | None:
    order_by = document.get("+order_by")
    order = document.get("+order", "asc")
    if order not in ("asc", "desc"):
        raise FilterError("+order must be asc or desc")
    if order_by is None:
        return None
    if not isinstance(order_by, str) or order_by not in fields or not fields[order_by].orderable:
        raise FilterError(f"Cannot order by {order_by}")
    lookup = fields[order_by].lookup
    prefix = "-" if order == "desc" else ""
    return [f"{prefix}{lookup}", f"{prefix}pk"]


# What each kind of value is, as JSON Schema (the parsers above accept these, and refuse what is outside).
_TIMESTAMP_VALUE = {
    "type": "string",
    "pattern": "^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$",
}
# Exactly what gpuadmin.api.inputs refuses in X-Filter strings (tab, line feed and return are allowed).
_TEXT_VALUE = {
    "type": "string",
    "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$",
}
_VALUE_SCHEMAS = {
    _text: _TEXT_VALUE,
    _integer: {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    _decimal: {
        "type": "number",
        "minimum": -float(MAX_AMOUNT),
        "exclusiveMinimum": True,
        "maximum": float(MAX_AMOUNT),
        "exclusiveMaximum": True,
    },
    boolean_value: {"type": "boolean"},
    _timestamp: _TIMESTAMP_VALUE,
}
FILTER_NESTING_IN_SCHEMA = 2  # +and/+or levels the schema spells out (the parser takes up to MAX_DEPTH)


def _field_schema(field: Field) -> dict:
    value = _VALUE_SCHEMAS.get(field.parse, {})
    if field.kind == "scalar":
        operators = ["+neq", *COMPARISONS] + (["+contains"] if field.text else [])
    else:
        operators = ["+neq", "+contains"]
    by_operator = {
        "type": "object",
        # A constant's operands are read by its own parser (events' `seen` takes booleans only).
        "properties": {
            op: _TEXT_VALUE if op == "+contains" and field.kind != "constant" else value for op in operators
        },
        # Operators Linode may add later are ignored by the parser, but OpenAPI 3.0 has no
        # patternProperties to say "any other key starting with +": the schema lists the ones that work.
        "additionalProperties": False,
    }
    return {"anyOf": [value, by_operator]}


def filter_schema(fields: Mapping[str, Field], depth: int = 0) -> dict:
    """The X-Filter header's JSON Schema for a view's keys: what parse_filter accepts."""
    properties = {key: _field_schema(field) for key, field in fields.items()}
    if depth < FILTER_NESTING_IN_SCHEMA:
        nested = {"type": "array", "items": filter_schema(fields, depth + 1)}
        properties["+and"] = properties["+or"] = nested
    if depth == 0:
        properties["+order_by"] = {
            "type": "string",
            "enum": sorted(k for k, f in fields.items() if f.orderable),
        }
        properties["+order"] = {"type": "string", "enum": ["asc", "desc"]}
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }


class XFilterBackend(BaseFilterBackend):
    """Applies the header to a list view's queryset, using the view's `filter_fields`."""

    def filter_queryset(self, request, queryset, view):
        parsed = parse_filter(request.headers.get(HEADER), getattr(view, "filter_fields", {}))
        queryset = queryset.filter(parsed.condition)
        if parsed.ordering:
            queryset = queryset.order_by(*parsed.ordering)
        return queryset

    def get_schema_operation_parameters(self, view):
        keys = ", ".join(sorted(getattr(view, "filter_fields", {}))) or "none"
        return [
            {
                "name": HEADER,
                "in": "header",
                "required": False,
                "description": (
                    "A JSON object of conditions: equality, +gt, +gte, +lt, +lte, +neq, +contains, "
                    f"+and, +or, +order_by, +order. Filterable keys: {keys}. At most {MAX_HEADER_LENGTH} "
                    "characters."
                ),
                "content": {
                    "application/json": {"schema": filter_schema(getattr(view, "filter_fields", {}))}
                },
            }
        ]
