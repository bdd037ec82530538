"""The public status page: regions, and which GPU plans can be had where now.

The same answer /v4/regions/availability gives the same caller: the page is public, so it asks as an
anonymous caller does (the API authenticates bearer tokens only; a signed-in staff member's session
does not change what the public sees)."""

from dataclasses import dataclass, field

from accounts.flags import gpu_plans_visible
from inventory.api.selectors import availability, regions_with_offers
from inventory.models import InstanceType

__all__ = ["PublicStatus", "RegionStatusLine", "public_status"]


@dataclass
class RegionStatusLine:
    id: str
    label: str
    country: str
    status: str
    offers_gpu: bool
    available: dict[str, bool] = field(default_factory=dict)  # plan id -> one more fits now
    cells: list[tuple[str, bool]] = field(default_factory=list)  # (plan id, available) in the page's order


@dataclass
class PublicStatus:
    gpu_plans_visible: bool
    plans: list[InstanceType]
    regions: list[RegionStatusLine]
    rows: list[dict]  # availability's rows, as the API lists them


def public_status() -> PublicStatus:
    visible = gpu_plans_visible(user=None)
    rows = availability(include_gpu=visible) or []
    plan_ids = list(dict.fromkeys(row["plan"] for row in rows))
    plans = {p.id: p for p in InstanceType.objects.filter(pk__in=plan_ids)}
    lines = {
        region.id: RegionStatusLine(region.id, region.label, region.country, region.status, region.offers_gpu)
        for region in regions_with_offers(include_gpu=visible)
    }
    for row in rows:
        lines[row["region"]].available[row["plan"]] = row["available"]
    for line in lines.values():
        line.cells = [(plan_id, line.available.get(plan_id, False)) for plan_id in plan_ids]
    return PublicStatus(
        gpu_plans_visible=visible,
        plans=[plans[plan_id] for plan_id in plan_ids if plan_id in plans],
        regions=list(lines.values()),
        rows=rows,
    )
