"""The metrics each process records itself (the rest are read from the database at scrape time).

Under gunicorn, PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py) before prometheus_client is first
imported, so every worker process writes its samples to files there and a scrape answered by any one
worker adds them all up.
"""

from prometheus_client import Histogram

REQUEST_DURATION = Histogram(
    "gpuadmin_http_request_duration_seconds",
    "Time to answer a request, by view (URL pattern name), method and status code.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
