"""Staff pages of the admin site: the capacity dashboard (the admin index) and the capacity page.

The views read through selectors; the spin-up form is in gpuadmin.spin_up.
"""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from gpuadmin.selectors import fleet_overview, gpu_plans_audience
from gpuadmin.spin_up import can_spin_up


def index_context(request: HttpRequest) -> dict:
    """The admin index: capacity per region and GPU model at a glance, the GPU flag, the spin-up button."""
    return {
        "fleet": fleet_overview(with_hosts=False),
        "gpu_flag": gpu_plans_audience(user=request.user),
        "can_spin_up": can_spin_up(request.user),
    }


def capacity_view(request: HttpRequest) -> HttpResponse:
    """Every host of a region (or of all), with free GPUs, cores and memory per NUMA node."""
    region = request.GET.get("region") or None
    fleet = fleet_overview(region=region)
    context = {
        **admin.site.each_context(request),
        "title": "Capacity" + (f": {region}" if region in fleet.region_ids else ""),
        "fleet": fleet,
        "selected_region": region if region in fleet.region_ids else None,
        "gpu_flag": gpu_plans_audience(user=request.user),
        "can_spin_up": can_spin_up(request.user),
    }
    return TemplateResponse(request, "admin/gpuadmin/capacity.html", context)
