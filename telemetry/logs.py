"""One JSON object per log line: time, level, logger, message, the log context, and the exception.

gunicorn's access log lines also carry the request's method, path, status, size, duration and the
request id the application answered with (its X-Request-ID header), as fields of their own.
"""

import json
import logging
from datetime import UTC, datetime

from telemetry.context import FIELDS, current

# gunicorn's access-log atoms worth a field each (gunicorn.glogging.Logger.atoms).
ACCESS_FIELDS = {
    "h": "remote_addr",
    "m": "method",
    "U": "path",
    "q": "query",
    "s": "status",
    "B": "bytes",
    "M": "duration_ms",
    "a": "user_agent",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None,
        }
        entry.update(current())
        for name in FIELDS:  # set explicitly on the record (logger.info(..., extra={...})) wins
            if getattr(record, name, None) is not None:
                entry[name] = getattr(record, name)
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            entry.update(_access_fields(record.args))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _access_fields(atoms: dict) -> dict[str, object]:
    fields = {
        name: atoms.get(atom)
        for atom, name in ACCESS_FIELDS.items()
        if atoms.get(atom) not in (None, "", "-")
    }
    request_id = atoms.get("{x-request-id}o")
    if request_id not in (None, "-"):
        fields["request_id"] = request_id
    if "status" in fields:
        fields["status"] = int(fields["status"])
    return fields
