"""The admin index is the capacity dashboard; /admin/capacity/ has every host and NUMA node."""

import re

import pytest
from django.urls import reverse

from accounts.flags import GPU_INSTANCES, PROVISIONING_ENABLED
from accounts.models import Account
from gpuadmin.models import Flag
from inventory.models import Host
from tests.builders import (
    make_account,
    make_allocation,
    make_gpu_host,
    make_instance,
    make_region,
    make_standard_host,
    make_standard_plan,
    make_user,
)
from tests.gpuadmin.conftest import build_fleet, make_staff

pytestmark = pytest.mark.django_db


def row(html: str, region: str, model: str = "RTX 6000") -> list[str]:
    """The cells of a region/model row of the summary table, as text."""
    match = re.search(
        rf'<tr class="capacity-row" data-region="{region}" data-model="{model}">(.*?)</tr>', html, re.S
    )
    assert match, f"no capacity row for {region} {model}"
    return [plain(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", match[1], re.S)]


def plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&middot;", "·").strip()


def test_index_shows_capacity_per_region_and_model_with_spin_up_buttons(client, fleet, superuser):
    first = fleet.hosts[0]
    instance = make_instance(plan=fleet.plans[2], region=fleet.region)
    make_allocation(instance=instance, host=first, gpus=2, vcpus=16, memory_mib=64 * 1024)
    make_gpu_host(region=make_region("ap-west", "Mumbai, IN", "in"), state=Host.State.DRAINING)
    client.force_login(superuser)

    response = client.get(reverse("admin:index"))

    assert response.status_code == 200
    html = response.content.decode()
    cells = row(html, "us-east")
    # region, model, hosts, total, allocated, free, stranded, not for sale (with its buckets), sellable
    assert cells[1:8] == ["RTX 6000", "2 / 2", "8", "2", "6", "0", "0"]
    assert cells[8] == (
        "g1-gpu-rtx6000-1 6 Spin up g1-gpu-rtx6000-2 3 Spin up g1-gpu-rtx6000-3 1 Spin up "
        "g1-gpu-rtx6000-4 1 Spin up"
    )
    draining = row(html, "ap-west")
    assert draining[2:6] == ["0 / 1", "4", "0", "0"] and draining[7] == "4 : 4 host out of service"
    spin_up = reverse("admin:spin_up")
    assert f'href="{spin_up}?plan=g1-gpu-rtx6000-4&amp;region=us-east"' in html
    assert "region=ap-west" not in html.split('id="gpu-flag"')[0].split("capacity-summary")[1].replace(
        "capacity/?region=ap-west", ""
    )  # a region that sells nothing has no spin-up button
    assert 'id="spin-up-gpu-linode"' in html
    assert 'id="app-list"' in html or "Inventory" in html  # the app list is still there


def test_index_says_who_sees_gpu_plans_and_links_the_flag(client, fleet, superuser):
    flag = Flag.objects.get(name=GPU_INSTANCES)
    make_account(kind=Account.Kind.EMPLOYEE)
    flag.accounts.add(fleet.customer)
    client.force_login(superuser)

    html = client.get(reverse("admin:index")).content.decode()

    summary = re.search(r'id="gpu-flag-summary">(.*?)<', html)[1]
    assert summary == "Only: every employee account (1); accounts Render Farm; superusers"
    assert reverse("admin:gpuadmin_flag_change", args=[flag.pk]) in html
    assert "Provisioning:" in html and "enabled" in html

    Flag.objects.filter(pk=flag.pk).update(everyone=True)
    html = client.get(reverse("admin:index")).content.decode()
    assert re.search(r'id="gpu-flag-summary">(.*?)<', html)[1] == "Everyone: GPU plans are launched"


def test_index_shows_a_paused_provisioning_switch(client, fleet, superuser):
    from waffle.models import Switch

    Switch.objects.filter(name=PROVISIONING_ENABLED).update(active=False)
    client.force_login(superuser)
    assert "paused (new creates are refused)" in client.get(reverse("admin:index")).content.decode()


def test_capacity_page_lists_hosts_with_free_resources_per_numa_node(client, fleet, superuser):
    first, second = fleet.hosts
    instance = make_instance(plan=fleet.plans[1], region=fleet.region)
    make_allocation(instance=instance, host=first, gpus=1, vcpus=8, memory_mib=32 * 1024)
    Host.objects.filter(pk=second.pk).update(state=Host.State.MAINTENANCE)
    other = make_gpu_host(region=make_region("ap-west", "Mumbai, IN", "in"))
    make_standard_plan(2)
    standard = make_standard_host(region=fleet.region)
    client.force_login(superuser)

    html = client.get(reverse("admin:capacity")).content.decode()
    assert 'id="hosts-us-east-standard-"' in html and f'data-host="{standard.hostname}"' in html

    host_row = re.search(rf'data-host="{first.hostname}">(.*?)</tr>', html, re.S)[1]
    text = plain(host_row)
    # 24 cores a node, 2 reserved for the host; 192 GiB a node, 8 GiB reserved; 8 vCPUs = 4 cores taken.
    assert "node 0: 1 GPU · 18 cores (36 vCPUs) · 152 GiB" in text
    assert "node 1: 2 GPUs · 22 cores (44 vCPUs) · 184 GiB" in text
    assert "40" in text and "336 GiB" in text
    assert f'data-host="{second.hostname}"' in html and "state-maintenance" in html
    assert f'data-host="{other.hostname}"' in html

    only_us_east = client.get(reverse("admin:capacity"), {"region": "us-east"}).content.decode()
    assert f'data-host="{first.hostname}"' in only_us_east
    assert f'data-host="{other.hostname}"' not in only_us_east


def test_pages_need_staff(client, fleet):
    for url in (reverse("admin:index"), reverse("admin:capacity"), reverse("admin:spin_up")):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    client.force_login(make_user())  # a customer: not staff
    response = client.get(reverse("admin:capacity"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_add_permission_see_capacity_but_no_spin_up_button(client, fleet):
    client.force_login(make_staff("inventory.view_host"))
    for url in (reverse("admin:index"), reverse("admin:capacity")):
        response = client.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        assert "Spin up" not in html
        assert row(html, "us-east")[3] == "8"


@pytest.mark.parametrize("hosts", [2, 20])
def test_dashboard_pages_cost_a_fixed_number_of_queries(
    client, superuser, hosts, django_assert_max_num_queries
):
    fleet = build_fleet(hosts=hosts)
    for host in fleet.hosts[:2]:
        make_allocation(
            instance=make_instance(plan=fleet.plans[1], region=fleet.region),
            host=host,
            gpus=1,
            vcpus=8,
            memory_mib=32 * 1024,
        )
    make_gpu_host(region=make_region("ap-west", "Mumbai, IN", "in"))
    client.force_login(superuser)
    with django_assert_max_num_queries(16):
        assert client.get(reverse("admin:index")).status_code == 200
    with django_assert_max_num_queries(16):
        assert client.get(reverse("admin:capacity")).status_code == 200


def test_the_cards_not_for_sale_are_one_column_with_their_buckets_named(client, fleet, superuser):
    from inventory.counters import gpu_set_state
    from inventory.models import GpuDevice

    first, second = GpuDevice.objects.filter(host=fleet.hosts[0]).order_by("pci_address")[:2]
    gpu_set_state(gpu=first, state=GpuDevice.State.CLEANING)
    gpu_set_state(gpu=second, state=GpuDevice.State.FAULTY, reason="fan")
    client.force_login(superuser)

    cells = row(client.get(reverse("admin:index")).content.decode(), "us-east")

    assert cells[5] == "6" and cells[7] == "2 : 1 cleaning · 1 faulty"
