"""Staff roles (groups made by a data migration): each role against every staff action. Allowed: the
action happens; refused: a 403 (or, for an admin list action, the action is not offered) and nothing
changes."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.urls import reverse

from accounts.models import Account, AuditRecord, Origin
from billing.models import Promotion, TaxRate
from gpuadmin.roles import BILLING, CAPACITY, ROLES, SUPPORT
from inventory.models import GpuDevice, Host
from provisioning.models import Instance, Job
from provisioning.services import instance_create
from tests.builders import make_user

pytestmark = pytest.mark.django_db

ROLE_NAMES = [SUPPORT, CAPACITY, BILLING]


def staff_in(role: str):
    user = make_user()
    get_user_model().objects.filter(pk=user.pk).update(is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return get_user_model().objects.get(pk=user.pk)


@pytest.fixture
def running(fleet, superuser, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        instance = instance_create(
            account=fleet.customer,
            actor=superuser,
            plan=fleet.plans[1],
            region=fleet.region,
            image=fleet.image,
            root_pass="Correct-Horse-42",
            origin=Origin.STAFF,
        )
    instance.refresh_from_db()
    assert instance.status == Instance.Status.RUNNING
    return instance


def test_the_migration_made_the_three_roles_with_reads_for_all():
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)
    for role in ROLE_NAMES:
        codenames = set(Group.objects.get(name=role).permissions.values_list("codename", flat=True))
        assert {"view_instance", "view_host", "view_gpudevice", "view_account", "view_job"} <= codenames
        assert {"view_invoice", "view_auditrecord", "view_flag"} <= codenames
        # Models that came after the roles' first migration (gpuadmin 0006 grants them).
        later = {"view_ipv4pool", "view_ipv4address", "view_ipv4assignment", "view_capacitysample"}
        assert later <= codenames
        assert "delete_instance" not in codenames and "change_flag" not in codenames
    support = set(Group.objects.get(name=SUPPORT).permissions.values_list("codename", flat=True))
    assert all(codename.startswith("view_") for codename in support)


# Pages every role reads.
PAGES = [
    ("dashboard", lambda f, i: reverse("admin:index")),
    ("capacity", lambda f, i: reverse("admin:capacity") + "?region=us-east"),
    ("gpu list", lambda f, i: reverse("admin:inventory_gpudevice_changelist")),
    ("host page", lambda f, i: reverse("admin:inventory_host_change", args=[f.hosts[0].pk])),
    ("instance page", lambda f, i: reverse("admin:provisioning_instance_change", args=[i.pk])),
    ("instance live", lambda f, i: reverse("admin:provisioning_instance_live", args=[i.pk])),
    ("account page", lambda f, i: reverse("admin:accounts_account_change", args=[f.customer.pk])),
    ("job list", lambda f, i: reverse("admin:provisioning_job_changelist")),
    ("allocation list", lambda f, i: reverse("admin:provisioning_allocation_changelist")),
    ("audit log", lambda f, i: reverse("admin:accounts_auditrecord_changelist")),
    ("invoice list", lambda f, i: reverse("admin:billing_invoice_changelist")),
    ("search", lambda f, i: reverse("admin:search") + "?q=Render"),
]


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_role_reads_every_console_page(client, fleet, running, role):
    client.force_login(staff_in(role))
    refused = {
        page: status for page, url in PAGES if (status := client.get(url(fleet, running)).status_code) != 200
    }
    assert refused == {}


def _spin_up_page(client, fleet, instance):
    response = client.get(reverse("admin:spin_up"))
    return response.status_code == 200, response.status_code


def _spin_up_post(client, fleet, instance):
    before = Instance.objects.count()
    response = client.post(
        reverse("admin:spin_up"),
        {
            "account": fleet.customer.pk,
            "plan": fleet.plans[1].pk,
            "region": "us-east",
            "image": fleet.image.pk,
        },
    )
    return Instance.objects.count() == before + 1, response.status_code


def _admin_action(model: str, action: str, objects, **extra):
    def run(client):
        return client.post(
            reverse(f"admin:{model}_changelist"),
            {"action": action, "_selected_action": [o.pk for o in objects], "confirm": "yes", **extra},
        )

    return run


def _drain(client, fleet, instance):
    host = fleet.hosts[1]
    response = _admin_action("inventory_host", "drain_hosts", [host], reason="maintenance window")(client)
    host.refresh_from_db()
    return host.state == Host.State.DRAINING, response.status_code


def _mark_faulty(client, fleet, instance):
    gpu = GpuDevice.objects.filter(host=fleet.hosts[1]).order_by("pci_address").first()
    response = _admin_action("inventory_gpudevice", "mark_faulty", [gpu], reason="fell off the bus")(client)
    gpu.refresh_from_db()
    return gpu.state == GpuDevice.State.FAULTY, response.status_code


def _instance_button(action: str, job_action: str):
    def run(client, fleet, instance):
        before = instance.jobs.filter(action=job_action).count()
        response = client.post(reverse("admin:provisioning_instance_act", args=[instance.pk, action]))
        return instance.jobs.filter(action=job_action).count() == before + 1, response.status_code

    return run


def _resize(client, fleet, instance):
    response = client.post(
        reverse("admin:provisioning_instance_act", args=[instance.pk, "resize"]), {"plan": fleet.plans[2].pk}
    )
    return instance.jobs.filter(action=Job.Action.RESIZE).exists(), response.status_code


def _instance_list_action(client, fleet, instance):
    response = _admin_action("provisioning_instance", "shut_down", [instance])(client)
    return instance.jobs.filter(action=Job.Action.SHUTDOWN).exists(), response.status_code


def _edit_account(client, fleet, instance):
    account = fleet.customer
    response = client.post(
        reverse("admin:accounts_account_change", args=[account.pk]),
        {
            "name": account.name,
            "kind": "customer",
            "email": "billing@render.example",
            "company": "",
            "active": "on",
            "gpu_limit": "16",
            "instance_limit": "",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "promotions-TOTAL_FORMS": "0",
            "promotions-INITIAL_FORMS": "0",
        },
    )
    account.refresh_from_db()
    return (account.email, account.gpu_limit) == ("billing@render.example", 16), response.status_code


def _grant_trial(client, fleet, instance):
    response = client.post(reverse("admin:accounts_account_grant_gpu_trial", args=[fleet.customer.pk]))
    return Promotion.objects.filter(account=fleet.customer).exists(), response.status_code


def _add_tax_rate(client, fleet, instance):
    response = client.post(
        reverse("admin:billing_taxrate_add"),
        {"country": "DE", "name": "VAT", "percent": "19", "valid_from": "2026-01-01", "valid_until": ""},
    )
    return TaxRate.objects.filter(country="DE").exists(), response.status_code


def _launch_flag(client, fleet, instance):
    from gpuadmin.models import Flag

    flag = Flag.objects.get(name="gpu_instances")
    response = client.post(
        reverse("admin:gpuadmin_flag_change", args=[flag.pk]), {"name": flag.name, "everyone": "1"}
    )
    flag.refresh_from_db()
    return flag.everyone is True, response.status_code


# (action, how, the roles allowed). Superusers may do all of it; nobody in a role deletes an instance
# or launches the flag.
ACTIONS = [
    ("spin-up page", _spin_up_page, {CAPACITY}),
    ("spin up", _spin_up_post, {CAPACITY}),
    ("drain a host", _drain, {CAPACITY}),
    ("mark a GPU faulty", _mark_faulty, {CAPACITY}),
    ("shut down (button)", _instance_button("shutdown", Job.Action.SHUTDOWN), {CAPACITY}),
    ("reboot (button)", _instance_button("reboot", Job.Action.REBOOT), {CAPACITY}),
    ("resize (button)", _resize, {CAPACITY}),
    ("shut down (list action)", _instance_list_action, {CAPACITY}),
    ("delete an instance", _instance_button("delete", Job.Action.DELETE), set()),
    ("edit an account and its limits", _edit_account, {BILLING}),
    ("grant the GPU trial", _grant_trial, {BILLING}),
    ("add a tax rate", _add_tax_rate, {BILLING}),
    ("launch the GPU flag", _launch_flag, set()),
]


@pytest.mark.parametrize("role", ROLE_NAMES)
@pytest.mark.parametrize(("name", "how", "allowed"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_each_role_against_every_action(client, fleet, running, role, name, how, allowed):
    client.force_login(staff_in(role))
    audit_before = AuditRecord.objects.count()
    happened, status = how(client, fleet, running)
    if role in allowed:
        assert happened, (name, status)
        assert status in (200, 302)
    else:
        assert not happened, name
        assert status in (403, 404) or (status in (200, 302) and AuditRecord.objects.count() == audit_before)


def test_support_sees_no_spin_up_button_and_no_instance_buttons(client, fleet, running):
    client.force_login(staff_in(SUPPORT))
    dashboard = client.get(reverse("admin:index")).content.decode()
    assert 'id="spin-up-gpu-linode"' not in dashboard
    page = client.get(reverse("admin:provisioning_instance_change", args=[running.pk])).content.decode()
    assert 'class="live-action" data-action="shutdown" hidden' in page
    assert client.get(reverse("admin:spin_up")).status_code == 403


def test_a_capacity_operator_sees_the_spin_up_button(client, fleet, running):
    client.force_login(staff_in(CAPACITY))
    assert 'id="spin-up-gpu-linode"' in client.get(reverse("admin:index")).content.decode()


def test_the_accounts_kind_is_unchanged_by_a_refused_edit(client, fleet, running):
    client.force_login(staff_in(SUPPORT))
    _edit_account(client, fleet, running)
    assert Account.objects.get(pk=fleet.customer.pk).email == fleet.customer.email
