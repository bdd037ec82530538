"""Reads behind the staff console, each a fixed number of queries whatever the fleet size; the pages only
lay the results out. One module per page or panel."""

from gpuadmin.selectors.accounts import AccountAccess, AccountOverview, HeldInstance, account_overview
from gpuadmin.selectors.capacity import (
    FleetOverview,
    HostLine,
    NodeLine,
    RegionLine,
    fleet_overview,
    gpu_sellable_by_region,
)
from gpuadmin.selectors.flags import FlagAudience, gpu_plans_audience
from gpuadmin.selectors.search import SEARCH_KINDS, SearchHit, SearchResults, console_search
from gpuadmin.selectors.status import PublicStatus, RegionStatusLine, public_status

__all__ = [
    "SEARCH_KINDS",
    "AccountAccess",
    "AccountOverview",
    "FlagAudience",
    "FleetOverview",
    "HeldInstance",
    "HostLine",
    "NodeLine",
    "PublicStatus",
    "RegionLine",
    "RegionStatusLine",
    "SearchHit",
    "SearchResults",
    "account_overview",
    "console_search",
    "fleet_overview",
    "gpu_plans_audience",
    "gpu_sellable_by_region",
    "public_status",
]
