"""What a log line is about: the request it serves, the job and instance it works on.

Context variables, so each thread and each task of a process sees its own values; `log_context` sets
some for the length of a block and puts the previous ones back after it.
"""

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

FIELDS = ("request_id", "job_id", "instance_id")

_vars: dict[str, ContextVar] = {name: ContextVar(name, default=None) for name in FIELDS}

# What an incoming X-Request-ID may be to be kept: a proxy's or a client's id (UUIDs, hex, AWS trace
# ids), never something that could break a log line or a header.
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+=/-]{0,127}")


def request_id_from(value: str | None) -> str:
    """The id to use for a request: the caller's when it is sane, otherwise a new one."""
    if value and REQUEST_ID_RE.fullmatch(value):
        return value
    return uuid.uuid4().hex


def current() -> dict[str, object]:
    """Every field that is set, by name."""
    return {name: var.get() for name, var in _vars.items() if var.get() is not None}


def current_request_id() -> str:
    return _vars["request_id"].get() or ""


@contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Set some of FIELDS for the block (None or "" leaves a field unset)."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log context fields: {sorted(unknown)}")
    tokens = [
        (_vars[name], _vars[name].set(value if value not in ("", None) else None))
        for name, value in values.items()
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
