"""The JSON log line and the log context, without Django."""

import json
import logging
import threading

import pytest

from telemetry.context import current, log_context, request_id_from
from telemetry.logs import JsonFormatter


def record(message: str = "hello %s", *args, name: str = "gpuadmin.test", **extra) -> logging.LogRecord:
    made = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args or ("world",), None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_line_is_one_json_object_with_the_fields_a_log_search_needs():
    with log_context(request_id="req-1", job_id=7, instance_id=42):
        line = JsonFormatter().format(record())
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "gpuadmin.test"
    assert entry["message"] == "hello world"
    assert (entry["request_id"], entry["job_id"], entry["instance_id"]) == ("req-1", 7, 42)
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]


def test_outside_any_context_the_request_id_is_null_and_no_job_is_named():
    entry = json.loads(JsonFormatter().format(record()))
    assert entry["request_id"] is None
    assert "job_id" not in entry and "instance_id" not in entry


def test_an_exception_and_a_multi_line_message_stay_on_one_line():
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        import sys

        made = record("first\nsecond %s")
        made.exc_info = sys.exc_info()
    line = JsonFormatter().format(made)
    assert line.count("\n") == 0
    entry = json.loads(line)
    assert entry["message"] == "first\nsecond world" and "ValueError: bad" in entry["exception"]


def test_gunicorns_access_atoms_become_fields_and_the_response_request_id_wins():
    atoms = {"h": "127.0.0.1", "m": "GET", "U": "/v4/regions", "q": "", "s": "200", "B": 512, "M": 3,
             "a": "curl/8", "{x-request-id}o": "abc-123"}  # fmt: skip
    made = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "%(m)s %(U)s %(s)s", (atoms,), None
    )
    entry = json.loads(JsonFormatter().format(made))
    assert entry["message"] == "GET /v4/regions 200"
    assert entry["status"] == 200 and entry["path"] == "/v4/regions" and entry["duration_ms"] == 3
    assert entry["request_id"] == "abc-123" and "query" not in entry  # empty atoms are left out


def test_context_nests_and_is_restored_and_threads_do_not_see_each_other():
    seen = {}
    with log_context(request_id="outer"):
        with log_context(job_id=1):
            assert current() == {"request_id": "outer", "job_id": 1}
            thread = threading.Thread(target=lambda: seen.update(current()))
            thread.start()
            thread.join()
        assert current() == {"request_id": "outer"}
    assert current() == {} and seen == {}
    with pytest.raises(TypeError):
        with log_context(user="alice"):
            pass


@pytest.mark.parametrize("value", ["3f2a9c1e-0000-4000-8000-0123456789ab", "Root=1-5759e988-bd862e3fe", "a"])
def test_a_sane_incoming_request_id_is_kept(value):
    assert request_id_from(value) == value


@pytest.mark.parametrize("value", ["", None, "x" * 129, "has space", "line\nbreak", '"quoted"', "-leading"])
def test_anything_else_is_replaced_by_a_fresh_id(value):
    fresh = request_id_from(value)
    assert fresh != value and len(fresh) == 32 and fresh != request_id_from(value)
