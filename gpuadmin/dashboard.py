"""Staff pages of the admin site: the capacity dashboard (the admin index) and the capacity page.

The views read through selectors; the spin-up form is in gpuadmin.spin_up.
"""

from dataclasses import dataclass
from datetime import datetime

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import SafeString

from gpuadmin.charts import Series, legend, line_chart
from gpuadmin.selectors import fleet_overview, gpu_plans_audience
from gpuadmin.spin_up import can_spin_up
from inventory.selectors import CAPACITY_WINDOWS, CapacityHistory, capacity_history

DEFAULT_WINDOW = "24h"
# What the GPU chart draws from each sample: (name, field, CSS class).
GPU_LINES = (
    ("allocated", "allocated", "s-allocated"),
    ("free", "free", "s-free"),
    ("stranded", "stranded", "s-stranded"),
    ("cleaning", "cleaning", "s-cleaning"),
    ("quarantined", "quarantined", "s-quarantined"),
)
PLAN_CLASSES = 6  # s-plan-0 .. s-plan-5 in _capacity_history.html


@dataclass
class HistoryPanel:
    region: str
    region_label: str
    gpu_model: str
    gpu_chart: SafeString
    gpu_legend: SafeString
    sellable_chart: SafeString
    sellable_legend: SafeString


def index_context(request: HttpRequest) -> dict:
    """The admin index: capacity per region and GPU model at a glance and over time, the GPU flag, the
    spin-up button."""
    window = request.GET.get("window")
    window = window if window in CAPACITY_WINDOWS else DEFAULT_WINDOW
    return {
        "fleet": fleet_overview(with_hosts=False),
        "history_window": window,
        "history_windows": list(CAPACITY_WINDOWS),
        "history": history_panels(window=window),
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


def history_panels(*, window: str, now: datetime | None = None) -> list[HistoryPanel]:
    """Two charts per region and GPU model over the window: the cards by state, and sellable per plan."""
    end = now or timezone.now()
    start = end - CAPACITY_WINDOWS[window]
    return [_panel(history, start, end) for history in capacity_history(since=start, until=end)]


def _panel(history: CapacityHistory, start: datetime, end: datetime) -> HistoryPanel:
    times = [s.recorded_at for s in history.samples]
    what = f"{history.region} {history.gpu_model}"
    gpu_series = [
        Series(name, [getattr(s, field) for s in history.samples], css) for name, field, css in GPU_LINES
    ]
    plan_series = [
        Series(plan, [s.sellable.get(plan, 0) for s in history.samples], f"s-plan-{i % PLAN_CLASSES}")
        for i, plan in enumerate(history.plans)
    ]
    return HistoryPanel(
        region=history.region,
        region_label=history.region_label,
        gpu_model=history.gpu_model,
        gpu_chart=line_chart(title=f"{what} GPUs", times=times, series=gpu_series, start=start, end=end),
        gpu_legend=legend(gpu_series),
        sellable_chart=line_chart(
            title=f"{what} sellable per plan", times=times, series=plan_series, start=start, end=end
        ),
        sellable_legend=legend(plan_series),
    )
