"""Free addresses per pool where operators look: capacity_report, /metrics, and the admin."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from networking.models import Ipv4Address, Ipv4Pool
from networking.services import address_claim
from tests.builders import make_gpu_host, make_instance, make_pool, make_region, make_standard_plan
from tests.gpuadmin.conftest import make_staff
from tests.gpuadmin.test_metrics import samples

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool():
    """us-east with a /29: six host addresses, the gateway and two reserved, one held."""
    region = make_region("us-east", pool=False)
    pool = make_pool(region=region, network="203.0.113.0/29", reserved="203.0.113.5-203.0.113.6")
    address_claim(instance=make_instance(plan=make_standard_plan(), region=region), region=region)
    return pool


def test_capacity_report_counts_each_pool_and_warns_when_one_is_empty(pool):
    make_gpu_host(region=pool.region)
    out = StringIO()
    call_command("capacity_report", stdout=out)
    assert "us-east  IPv4 pool 203.0.113.0/29: 2 free, 1 held, 0 cooling down, 3 reserved" in out.getvalue()
    out = StringIO()
    call_command("capacity_report", "--json", stdout=out)
    (row,) = json.loads(out.getvalue())
    assert row["ipv4_pools"] == [
        {"pool": "203.0.113.0/29", "region": "us-east", "total": 6, "held": 1, "reserved": 3, "cooling": 0,
         "free": 2}
    ]  # fmt: skip
    Ipv4Address.objects.filter(holder__isnull=True, reserved=False).update(reserved=True)
    out = StringIO()
    call_command("capacity_report", stdout=out)
    assert (
        "0 free, 1 held, 0 cooling down, 5 reserved  (no free address: creates are refused)" in out.getvalue()
    )


def test_metrics_show_free_addresses_per_pool(pool, client):
    found = samples(client.get("/metrics"))
    labels = (("pool", "203.0.113.0/29"), ("region", "us-east"))
    assert found[("gpuadmin_pool_free_addresses", *labels)] == 2
    assert found[("gpuadmin_pool_addresses", *labels[:1], ("region", "us-east"), ("state", "held"))] == 1


def test_staff_add_a_pool_in_the_admin_and_its_addresses_appear(client):
    region = make_region("eu-west", pool=False)
    client.force_login(
        make_staff("networking.add_ipv4pool", "networking.change_ipv4pool", "networking.view_ipv4pool")
    )
    response = client.post(
        reverse("admin:networking_ipv4pool_add"),
        {"region": region.pk, "network": "203.0.113.0", "prefix_length": 28, "gateway": "", "reserved": ""},
        follow=True,
    )
    assert response.status_code == 200
    pool = Ipv4Pool.objects.get(region=region)
    assert (pool.gateway, pool.addresses.count()) == ("203.0.113.1", 14)
    page = client.get(reverse("admin:networking_ipv4pool_changelist"))
    assert b"eu-west 203.0.113.0/28" in page.content

    refused = client.post(
        reverse("admin:networking_ipv4pool_add"),
        {"region": region.pk, "network": "203.0.113.8", "prefix_length": 29, "gateway": "", "reserved": ""},
    )
    assert refused.status_code == 200 and b"overlaps 203.0.113.0/28 of eu-west" in refused.content
    assert Ipv4Pool.objects.count() == 1

    changed = client.post(
        reverse("admin:networking_ipv4pool_change", args=[pool.pk]),
        {"gateway": "203.0.113.14", "reserved": "203.0.113.2-203.0.113.3"},
    )
    assert changed.status_code == 302, changed.context["adminform"].form.errors
    assert set(pool.addresses.filter(reserved=True).values_list("address", flat=True)) == {
        "203.0.113.14", "203.0.113.2", "203.0.113.3",
    }  # fmt: skip
