"""Holders everywhere, both directions: the GPU list and page name who holds each card and since when, with
the card's history; the account page lists what the account holds, may buy and owes; the allocation list
names account and cards; one search box finds accounts, instances, hosts, PCI addresses and IPs."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, AuditRecord
from billing.models import Invoice, Promotion
from inventory.models import GpuDevice
from inventory.services import gpu_mark_faulty
from provisioning.claims import allocation_release
from provisioning.models import Allocation, Instance
from tests.builders import make_account, make_allocation, make_instance, make_user
from tests.gpuadmin.conftest import make_staff

pytestmark = pytest.mark.django_db


def plain(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def list_row(html: str, pci: str, host: str) -> str:
    """The text of the GPU list's row for one card."""
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        text = plain(row)
        if text.startswith(pci) and host in text:
            return text
    raise AssertionError(f"no row for {pci} on {host}")


@pytest.fixture
def held(fleet):
    instance = make_instance(
        plan=fleet.plans[2], region=fleet.region, account=fleet.customer, label="trainer"
    )
    allocation = make_allocation(
        instance=instance, host=fleet.hosts[0], gpus=2, vcpus=16, memory_mib=64 * 1024
    )
    Instance.objects.filter(pk=instance.pk).update(status=Instance.Status.RUNNING, ipv4=["198.51.100.7"])
    instance.refresh_from_db()
    instance.allocation = allocation
    return instance


def test_the_gpu_list_shows_the_customers_view_holder_host_node_and_since(client, superuser, fleet, held):
    host = fleet.hosts[0]
    cards = list(GpuDevice.objects.filter(host=host).order_by("numa_node__index", "pci_address"))
    faulty = GpuDevice.objects.filter(host=fleet.hosts[1]).order_by("pci_address").first()
    gpu_mark_faulty(gpu=faulty, reason="fan", actor=superuser)
    client.force_login(superuser)

    html = client.get(reverse("admin:inventory_gpudevice_changelist")).content.decode()

    since = f"{held.allocation.created_at:%Y-%m-%d %H:%M}"
    assert list_row(html, cards[0].pci_address, host.hostname) == (
        f"{cards[0].pci_address} {host.hostname} 0 RTX 6000 held trainer · Render Farm {since}"
    )
    assert list_row(html, cards[2].pci_address, host.hostname).endswith("1 RTX 6000 free - -")
    record = AuditRecord.objects.get(action="gpu.faulty")
    assert list_row(html, faulty.pci_address, fleet.hosts[1].hostname).endswith(
        f"faulty - {record.created:%Y-%m-%d %H:%M}"
    )
    assert 'title="fan">faulty</span>' in html
    assert reverse("admin:accounts_account_change", args=[fleet.customer.pk]) in html


@pytest.mark.parametrize(("state", "count"), [("held", 2), ("free", 5), ("faulty", 1), ("cleaning", 0)])
def test_the_gpu_list_filters_by_the_customers_view(client, superuser, fleet, held, state, count):
    gpu_mark_faulty(gpu=GpuDevice.objects.filter(host=fleet.hosts[1]).first(), reason="x", actor=superuser)
    client.force_login(superuser)
    response = client.get(reverse("admin:inventory_gpudevice_changelist"), {"customer_state": state})
    assert response.context["cl"].result_count == count


def test_a_released_card_is_cleaning_since_its_release_and_its_page_has_the_history(
    client, superuser, fleet, held
):
    card = GpuDevice.objects.filter(allocations__allocation=held.allocation).order_by("pci_address").first()
    allocation_release(allocation=held.allocation)
    second = make_instance(plan=fleet.plans[1], region=fleet.region, label="second")
    GpuDevice.objects.filter(pk=card.pk).update(state=GpuDevice.State.AVAILABLE)  # as a reset would
    later = make_allocation(instance=second, host=fleet.hosts[0], gpus=1, vcpus=8, memory_mib=32 * 1024)
    assert later.gpus.get().gpu_id == card.pk
    client.force_login(superuser)

    html = client.get(reverse("admin:inventory_gpudevice_change", args=[card.pk])).content.decode()

    history = re.findall(r'<tr class="holder( current)?">(.*?)</tr>', html, re.S)
    assert [(bool(current), plain(row).split(" ")[0]) for current, row in history] == [
        (True, "second"),
        (False, "trainer"),
    ]
    assert "holds it now" in plain(history[0][1]) and "Render Farm" in plain(history[1][1])
    assert f"held by second · {second.account.name}" in plain(html)
    other = GpuDevice.objects.filter(allocations__allocation=held.allocation).exclude(pk=card.pk).get()
    page = plain(client.get(reverse("admin:inventory_gpudevice_change", args=[other.pk])).content.decode())
    held.allocation.refresh_from_db()
    assert f"cleaning since {held.allocation.released_at:%Y-%m-%d %H:%M} UTC" in page


def test_gpus_cannot_be_added_in_the_admin(client, superuser, fleet):
    client.force_login(superuser)
    assert client.get(reverse("admin:inventory_gpudevice_add")).status_code == 403


def test_the_allocation_list_names_the_account_and_the_cards(client, superuser, fleet, held):
    client.force_login(superuser)
    html = client.get(reverse("admin:provisioning_allocation_changelist"), {"held": "now"}).content.decode()
    addresses = ", ".join(
        sorted(
            GpuDevice.objects.filter(allocations__allocation=held.allocation).values_list(
                "pci_address", flat=True
            )
        )
    )
    results = html.split('id="result_list"')[1]
    row = plain(re.search(r"<tbody>.*?</tr>", results, re.S)[0])
    assert "Render Farm" in row and addresses in row and fleet.hosts[0].hostname in row
    by_card = client.get(reverse("admin:provisioning_allocation_changelist"), {"q": addresses.split(", ")[0]})
    assert list(by_card.context["cl"].result_list) == [Allocation.objects.get(pk=held.allocation.pk)]


def test_the_account_page_shows_instances_cards_hosts_access_and_billings_balance_trial_and_invoices(
    client, superuser, fleet, held
):
    now = timezone.now()
    Promotion.objects.create(
        account=fleet.customer,
        kind=Promotion.Kind.GPU_TRIAL,
        summary="GPU trial: $100 for 7 days",
        credit="100.00",
        starts_at=now,
        expires_at=now + timedelta(days=7),
    )
    Invoice.objects.create(
        account=fleet.customer, period=now.date().replace(day=1), date=now, subtotal="12.50", total="12.50"
    )
    make_instance(plan=fleet.plans[1], region=fleet.region, account=fleet.customer, label="idle")
    Instance.objects.create(
        account=fleet.customer,
        label="gone",
        region=fleet.region,
        instance_type=fleet.plans[1],
        deleted_at=now,
    )
    client.force_login(superuser)

    response = client.get(reverse("admin:accounts_account_change", args=[fleet.customer.pk]))

    html = response.content.decode()
    holdings = plain(re.search(r'id="account-holdings">(.*?)</p>', html, re.S)[1])
    assert holdings.startswith(f"2 live instances, 2 GPUs held on {fleet.hosts[0].hostname} (2); 1 deleted")
    rows = re.findall(r'<tr class="account-instance" data-instance="(\d+)">(.*?)</tr>', html, re.S)
    assert [plain(r).split(" ")[0] for _, r in rows] == ["idle", "trainer"]  # newest first
    trainer = plain(rows[1][1])
    assert fleet.hosts[0].hostname in trainer and "g1-gpu-rtx6000-2" in trainer and "0000:" in trainer
    assert "May buy GPU plans" in html and "the gpu_instances flag names this account" in html
    # Billing's sections stay on the page this one extends.
    assert "GPU trial: $100 for 7 days" in html and "$12.50" in html
    assert "Invoiced (finalized invoices)" in html and 'id="grant-gpu-trial"' in html
    assert f'href="{reverse("admin:spin_up")}?account={fleet.customer.pk}"' in html


def test_the_account_page_says_when_an_account_cannot_buy_gpu_plans(client, superuser):
    account = make_account(name="plain-customer")
    client.force_login(superuser)
    html = client.get(reverse("admin:accounts_account_change", args=[account.pk])).content.decode()
    assert "Does not see GPU plans" in html and "does not let this account in" in html
    employees = make_account(kind=Account.Kind.EMPLOYEE)
    html = client.get(reverse("admin:accounts_account_change", args=[employees.pk])).content.decode()
    assert "lets every employee account in" in html and "not charged" in html


def test_the_account_list_counts_live_instances_and_gpus(client, superuser, fleet, held):
    client.force_login(superuser)
    response = client.get(reverse("admin:accounts_account_changelist"), {"q": "Render"})
    [account] = response.context["cl"].result_list
    assert (account.live_count, account.gpus_count) == (1, 2)


def test_the_instance_list_filters_by_the_accounts_link(client, superuser, fleet, held):
    make_instance(plan=fleet.plans[1], region=fleet.region)  # someone else's
    client.force_login(superuser)
    url = reverse("admin:provisioning_instance_changelist") + f"?account__id__exact={fleet.customer.pk}"
    assert list(client.get(url).context["cl"].result_list) == [held]


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("Render", "account"),
        ("ops@render.example", "account"),
        ("trainer", "instance"),
        ("198.51.100.7", "instance"),
        ("us-east-gpu", "host"),
        ("00.0", "gpu"),
    ],
)
def test_the_search_box_finds_each_kind(client, superuser, fleet, held, query, kind):
    client.force_login(superuser)
    html = client.get(reverse("admin:search"), {"q": query}).content.decode()
    kinds = set(re.findall(r'class="search-hit" data-kind="(\w+)"', html))
    assert kind in kinds
    assert 'id="console-search"' in html and f'value="{query}"' in html


def test_an_address_is_matched_whole_and_ids_exactly(client, superuser, fleet, held):
    client.force_login(superuser)
    html = client.get(reverse("admin:search"), {"q": "198.51.100.70"}).content.decode()
    assert 'id="search-nothing"' in html
    html = client.get(reverse("admin:search"), {"q": str(held.pk)}).content.decode()
    assert reverse("admin:provisioning_instance_change", args=[held.pk]) in html


def test_the_search_shows_only_what_the_staff_member_may_view(client, fleet, held):
    client.force_login(make_staff("inventory.view_host"))
    html = client.get(reverse("admin:search"), {"q": "e"}).content.decode()
    assert set(re.findall(r'data-kind="(\w+)"', html)) == {"host"}
    client.force_login(make_user())  # not staff
    assert client.get(reverse("admin:search"), {"q": "e"}).status_code == 302
