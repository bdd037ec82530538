"""At 1,000 hosts the dashboard, the GPU list, an account's page and a host's page each cost a fixed,
small number of queries: the same as at ten hosts, and under a bound a test states."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.services import account_create
from inventory.fleet import fleet_seed
from inventory.models import Host
from inventory.statistics import inventory_statistics_refresh
from tests.builders import make_allocation, make_gpu_plan, make_instance, make_region

pytestmark = pytest.mark.django_db

# The most each page may cost (the admin's session, user and permission reads included); measured on
# PostgreSQL at 1,000 hosts: dashboard 16 (with its capacity charts), GPU list 7, account 23, host 27.
BOUNDS = {"dashboard": 20, "gpu list": 10, "account page": 26, "host page": 30}


def fleet_of(hosts: int, region_id: str):
    region = make_region(region_id, label=region_id)
    fleet_seed(region=region, count=hosts, profile="rtx6000-2x2")
    account = account_create(name=f"holder-{region_id}", email=f"ops@{region_id}.example")
    plan = make_gpu_plan(1)
    held = list(Host.objects.filter(region=region).order_by("hostname")[:3])
    for host in held:
        make_allocation(
            instance=make_instance(plan=plan, region=region, account=account),
            host=host,
            gpus=1,
            vcpus=8,
            memory_mib=32 * 1024,
        )
    return account, held[0]


def counts(client, account, host) -> dict[str, int]:
    pages = {
        "dashboard": reverse("admin:index"),
        "gpu list": reverse("admin:inventory_gpudevice_changelist"),
        "account page": reverse("admin:accounts_account_change", args=[account.pk]),
        "host page": reverse("admin:inventory_host_change", args=[host.pk]),
    }
    found = {}
    for name, url in pages.items():
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200, name
        found[name] = len(queries)
    return found


def test_four_pages_cost_the_same_few_queries_at_ten_and_at_a_thousand_hosts(client, superuser):
    client.force_login(superuser)
    small_fleet = fleet_of(10, "us-small")
    counts(client, *small_fleet)  # the first visit fills per-process caches (content types, flags)
    small = counts(client, *small_fleet)
    account, host = fleet_of(990, "us-east")  # 1,000 hosts in all, 4,000 cards
    if connection.vendor == "postgresql":
        inventory_statistics_refresh()
    assert Host.objects.count() == 1000
    large = counts(client, account, host)
    assert large == small, (small, large)
    assert all(large[name] <= bound for name, bound in BOUNDS.items()), large
