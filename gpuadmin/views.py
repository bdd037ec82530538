"""/healthz and /metrics: for load balancers and Prometheus, outside the public API; and the front door,
the public status page at /."""

import os

from django.http import HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from gpuadmin.health import DOWN, health_check
from gpuadmin.metrics.access import metrics_readable
from gpuadmin.metrics.fleet import FleetCollector
from gpuadmin.metrics.instruments import REQUEST_DURATION
from gpuadmin.selectors import public_status


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


@never_cache
@require_safe
def status_page(request):
    """Regions and which GPU plans are available where, as /v4/regions/availability says to the public."""
    return TemplateResponse(request, "status.html", {"status": public_status()})
