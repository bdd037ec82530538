"""Every request gets an id (in its log lines and in its response) and is timed per view."""

import time

from django.conf import settings

from gpuadmin.metrics.instruments import REQUEST_DURATION
from telemetry.context import log_context, request_id_from

REQUEST_ID_HEADER = "X-Request-ID"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestIdMiddleware:
    """The caller's X-Request-ID when it is sane (a proxy's id joins our logs to its own), else a new one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        with log_context(request_id=request.request_id):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


class RequestMetricsMiddleware:
    """Request latency by view (the URL pattern's name, never the path: ids would make a series each)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        REQUEST_DURATION.labels(
            view=self.view_of(request),
            method=request.method if request.method in METHODS else "other",
            status=str(response.status_code),
        ).observe(time.perf_counter() - started)
        return response

    def view_of(self, request) -> str:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            return match.view_name or match._func_path
        if request.path.startswith(self.static_prefix):
            return "static"
        return "unresolved"
