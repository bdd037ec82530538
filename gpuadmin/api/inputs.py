"""What the API accepts as text and JSON, checked once for every body, X-Filter, path and query string.

- JSON is refused when it nests deeper than MAX_JSON_DEPTH, measured before parsing, so the parser never
  recurses far enough to raise RecursionError;
- numbers must be finite: NaN and Infinity (which Python's json accepts) and 1e400 (which it turns
  into infinity) are refused, naming the field;
- text must not hold control characters (C0 but tab, line feed and carriage return; DEL; C1) or lone
  surrogates: PostgreSQL refuses NUL in any text and cannot encode a surrogate, and no field of the
  API means either.

Each refusal is an `InputRefused` naming the field (dotted for nested keys, `tags.0` for list items).
"""

import json
import math
import re
from typing import Any

from gpuadmin.api.errors import InputRefused
from gpuadmin.api.limits import MAX_JSON_DEPTH

CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# A JSON string (with its escapes), or one bracket: what the depth count walks over.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class _NotFinite:
    """Stands in for a number that is not finite while parsing, so the walk can name its field."""


NOT_FINITE = _NotFinite()


def control_character_reason(text: str, what: str) -> str | None:
    """Why `text` is refused, or None. `what` names it in the sentence ("label", "the path")."""
    found = CONTROL_CHARACTER.search(text)
    if found is None:
        return None
    return f"{what} contains a control character (U+{ord(found.group()):04X}), which is not allowed."


def nesting_exceeds(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def _finite_float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else NOT_FINITE


def load_json(text: str, *, what: str, field: str | None = None, not_json: str, explain: bool) -> Any:
    """Parse a JSON document by the rules above. `what` names the document in reasons ("The request
    body", "X-Filter"); `field` is reported for every refusal when the document is one field itself;
    `not_json` is the reason for text that is not JSON, followed by where it went wrong if `explain`."""
    if nesting_exceeds(text):
        raise InputRefused(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels.", field=field)
    try:
        document = json.loads(text, parse_constant=lambda _: NOT_FINITE, parse_float=_finite_float)
    except ValueError as exc:  # JSONDecodeError, and integers longer than Python converts
        raise InputRefused(not_json + (f" - {exc}" if explain else ""), field=field) from None
    check_values(document, what=what, field=field)
    return document


def check_values(value: Any, *, what: str, field: str | None = None, path: str | None = None) -> None:
    """Refuse control characters in keys and strings and non-finite numbers, anywhere in `value`.

    The recursion is bounded: documents reach here only after the depth check.
    """
    if isinstance(value, str):
        reason = control_character_reason(value, path or what)
        if reason:
            raise InputRefused(reason, field=field or path)
    elif value is NOT_FINITE or (isinstance(value, float) and not math.isfinite(value)):
        raise InputRefused(
            f"{path or what} is not a finite number (NaN, Infinity and numbers beyond 1.8e308 are not "
            "accepted).",
            field=field or path,
        )
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            reason = control_character_reason(str(key), f"The key {ascii(key)}")
            if reason:
                raise InputRefused(reason, field=field or path)
            check_values(item, what=what, field=field, path=name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_values(item, what=what, field=field, path=f"{path}.{index}" if path else str(index))
