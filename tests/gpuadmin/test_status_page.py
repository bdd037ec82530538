"""The front door: "View site" opens a public status page that says what /v4/regions/availability says,
and links to API docs whose viewer is served from our own static files."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse

from accounts.flags import GPU_INSTANCES
from gpuadmin.models import Flag
from inventory.models import Region
from tests.builders import make_allocation, make_instance, make_region

pytestmark = pytest.mark.django_db


def launch():
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)


def page_cells(html: str) -> list[dict]:
    """The availability cells of the status page, as the API lists them: region, plan, available."""
    cells = []
    for region, row in re.findall(r'<tr class="region" data-region="([^"]+)">(.*?)</tr>', html, re.S):
        for plan, words in re.findall(
            r'<td class="availability [a-z]+" data-plan="([^"]+)">([^<]*)</td>', row
        ):
            cells.append({"region": region, "plan": plan, "available": words == "available"})
    return cells


def test_the_status_page_says_what_the_api_says_about_availability(client, fleet):
    launch()
    # Two GPUs taken on each host: 2-GPU plans still fit, a 4-GPU plan no longer does.
    for host in fleet.hosts:
        instance = make_instance(plan=fleet.plans[2], region=fleet.region)
        make_allocation(instance=instance, host=host, gpus=2, vcpus=16, memory_mib=64 * 1024)
    make_region("ap-west", "Mumbai, IN", "in")
    Region.objects.filter(pk="ap-west").update(status=Region.Status.OUTAGE)

    html = client.get(reverse("status")).content.decode()
    api = client.get("/v4/regions/availability").json()

    assert page_cells(html) == api["data"]
    assert {"region": "us-east", "plan": "g1-gpu-rtx6000-4", "available": False} in api["data"]
    assert {"region": "us-east", "plan": "g1-gpu-rtx6000-2", "available": True} in api["data"]
    assert {"region": "ap-west", "plan": "g1-gpu-rtx6000-1", "available": False} in api["data"]
    assert 'data-region="ap-west"' in html and "Mumbai, IN (IN)" in html and 'class="outage"' in html


def test_before_launch_the_page_lists_regions_but_no_gpu_plans_as_the_api_does(client, fleet):
    html = client.get(reverse("status")).content.decode()

    assert client.get("/v4/regions/availability").json()["data"] == [] == page_cells(html)
    assert 'data-region="us-east"' in html
    assert 'id="gpu-not-launched"' in html and "g1-gpu-rtx6000" not in html


def test_a_signed_in_employee_still_sees_the_public_answer(client, fleet):
    from tests.builders import make_account, make_user

    employee = make_user(account=make_account(kind="employee"))
    client.force_login(employee)  # the employee account has the flag; the public does not
    html = client.get(reverse("status")).content.decode()
    assert page_cells(html) == [] and 'id="gpu-not-launched"' in html


def test_view_site_in_the_admin_opens_the_status_page(client, fleet, superuser):
    client.force_login(superuser)
    html = client.get(reverse("admin:index")).content.decode()
    assert re.search(r'<a href="/">View site</a>', html)
    response = client.get("/")
    assert response.status_code == 200 and 'id="regions"' in response.content.decode()


def test_the_status_page_links_the_api_docs_served_from_our_own_static_files(client, db):
    html = client.get(reverse("status")).content.decode()
    assert f'href="{reverse("api-docs")}"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from elsewhere

    docs = client.get(reverse("api-docs"))
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "/v4/openapi.json" in page
    assets = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"""["'](/static/[^"']+)["']""", page)
    assert assets and not [a for a in assets if re.match(r"(https?:)?//", a)], assets
    for asset in set(assets):
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not a static file we ship"
    assert client.get("/v4/openapi.json").status_code == 200


def test_the_status_page_answers_get_only(client, db):
    assert client.post(reverse("status")).status_code == 405
