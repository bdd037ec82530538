"""gunicorn's configuration for gpuadmin: `gunicorn -c gunicorn.conf.py` serves the application
(`make serve` runs it after collectstatic).

Every knob comes from the environment, with the defaults `.env.example` lists. The request limits sit
above the API's own (gpuadmin.api.limits), so that an over-long URL or X-Filter is answered by the API
with its JSON error body instead of gunicorn's HTML page. What gunicorn still refuses by itself (beyond
these limits, or a request it cannot parse) is listed in docs/api.md.
"""

import os
import re
import shutil
from pathlib import Path

from gpuadmin.api.limits import MAX_FILTER_LENGTH, MAX_URL_LENGTH


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


wsgi_app = "gpuadmin.wsgi:application"

# Where and how many: several addresses are comma-separated (127.0.0.1:8000,[::1]:8000, unix:/run/x.sock).
bind = [b.strip() for b in os.environ.get("GPUADMIN_BIND", "127.0.0.1:8000").split(",") if b.strip()]
workers = _env_int("GPUADMIN_WEB_WORKERS", 2)
proc_name = "gpuadmin-web"

# A request that takes longer than `timeout` gets its worker killed and replaced; on SIGTERM (a restart,
# an upgrade) workers get `graceful_timeout` to finish the requests they hold.
timeout = _env_int("GPUADMIN_WEB_TIMEOUT", 30)
graceful_timeout = _env_int("GPUADMIN_WEB_GRACEFUL_TIMEOUT", 30)
keepalive = _env_int("GPUADMIN_WEB_KEEPALIVE", 5)
# Workers are replaced after this many requests (jittered so they do not all restart at once): a slow
# leak in a dependency cannot grow for months.
max_requests = _env_int("GPUADMIN_WEB_MAX_REQUESTS", 2000)
max_requests_jitter = max_requests // 10

# The request line is "METHOD URL HTTP/1.1": 8190 is gunicorn's largest finite limit (0 would mean
# unlimited). URLs from MAX_URL_LENGTH + 1 to about 8,170 characters get the API's JSON 414.
limit_request_line = 8190
# One header line, name included. Twice the X-Filter limit: an X-Filter up to about 16,000 characters
# gets the API's JSON 400 that names the limit; Linode's clients send nothing near that.
limit_request_field_size = 2 * MAX_FILTER_LENGTH
# Header lines a request may have; API clients send about ten.
limit_request_fields = 100

assert limit_request_line > MAX_URL_LENGTH + len("OPTIONS  HTTP/1.1"), "the API's URL limit must answer first"
assert limit_request_field_size > MAX_FILTER_LENGTH + len("X-Filter: \r\n"), "the X-Filter limit must answer"

# The proxies allowed to say the request came over https (X-Forwarded-Proto) and from whom.
forwarded_allow_ips = os.environ.get("GPUADMIN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Logs: access lines on stdout, the server's own on stderr; JSON unless GPUADMIN_LOG_FORMAT=plain (the
# same choice as gpuadmin.settings: plain by default only with debug on).
accesslog = "-"
errorlog = "-"
_debug = os.environ.get("GPUADMIN_DEBUG", "").lower() in {"1", "true", "yes", "on"}
_log_format = os.environ.get("GPUADMIN_LOG_FORMAT", "") or ("plain" if _debug else "json")
if _log_format == "json":
    access_log_format = "%(m)s %(U)s %(s)s"  # the fields travel as JSON keys of their own
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "telemetry.logs.JsonFormatter"}},
        "handlers": {
            "access": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
            "server": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        },
        "root": {"level": "INFO", "handlers": ["server"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["server"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
else:
    access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'

# Metrics: prometheus_client's multiprocess mode, so a scrape answered by any worker counts the requests
# of all of them. One directory per server (two servers on one machine must not share one: each empties
# its own at start), set before any worker imports prometheus_client.
_var_dir = Path(os.environ.get("GPUADMIN_VAR_DIR", Path(__file__).resolve().parent / "var"))
_metrics_dir = os.environ.get("GPUADMIN_METRICS_DIR", "") or str(
    _var_dir / "metrics" / ("web-" + re.sub(r"[^A-Za-z0-9.-]+", "_", bind[0]))
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    # Samples of the processes of a previous run would be added to this run's.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
