"""/healthz and /metrics: for load balancers and Prometheus, outside the public API."""

import os

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from gpuadmin.health import DOWN, health_check
from gpuadmin.metrics.access import metrics_readable
from gpuadmin.metrics.fleet import FleetCollector
from gpuadmin.metrics.instruments import REQUEST_DURATION


@never_cache
@require_safe
def healthz(request):
    health = health_check()
    return JsonResponse(health.as_dict(), status=503 if health.status == DOWN else 200)


@never_cache
@require_safe
def metrics(request):
    if not metrics_readable(request):
        return HttpResponse(
            "/metrics is readable from GPUADMIN_METRICS_NETWORKS or with GPUADMIN_METRICS_TOKEN.\n",
            status=403,
            content_type="text/plain",
        )
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # every worker process's samples, added up
    else:
        registry.register(REQUEST_DURATION)
    registry.register(FleetCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
