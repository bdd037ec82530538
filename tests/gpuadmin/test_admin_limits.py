"""Staff set an account's limits on its page, see usage against them, and the spin-up form names them."""

import pytest
from django.test import override_settings
from django.urls import reverse

from accounts.models import AuditRecord
from provisioning.models import Instance
from provisioning.services import instance_create

pytestmark = pytest.mark.django_db

LIMITS = {"customer": {"gpus": 4, "instances": 10}, "employee": {}, "internal": {}}


def spin_up(fleet, staff, gpus=2):
    return instance_create(
        account=fleet.customer,
        actor=staff,
        plan=fleet.plans[gpus],
        region=fleet.region,
        image=fleet.image,
        root_pass="Correct-Horse-42",
    )


@override_settings(GPUADMIN_ACCOUNT_LIMITS=LIMITS)
def test_the_account_page_shows_usage_against_the_limits(client, superuser, fleet):
    spin_up(fleet, superuser)
    client.force_login(superuser)
    page = client.get(reverse("admin:accounts_account_change", args=[fleet.customer.pk])).content.decode()
    assert (
        '<tr class="account-limit" data-limit="gpus"><th>GPUs</th><td>2</td><td>4 (default)</td></tr>' in page
    )
    assert (
        '<tr class="account-limit" data-limit="instances"><th>Instances</th><td>1</td>'
        "<td>10 (default)</td></tr>" in page
    )


@override_settings(GPUADMIN_ACCOUNT_LIMITS=LIMITS)
def test_staff_set_the_limits_on_the_page_through_the_service(client, superuser, fleet):
    client.force_login(superuser)
    url = reverse("admin:accounts_account_change", args=[fleet.customer.pk])
    form = {
        "name": fleet.customer.name,
        "kind": "customer",
        "email": fleet.customer.email,
        "company": "",
        "active": "on",
        "gpu_limit": "2",
        "instance_limit": "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "promotions-TOTAL_FORMS": "0",
        "promotions-INITIAL_FORMS": "0",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    fleet.customer.refresh_from_db()
    assert (fleet.customer.gpu_limit, fleet.customer.instance_limit) == (2, None)
    record = AuditRecord.objects.get(action="account.limits")
    assert record.actor == superuser and record.detail == "GPUs default -> 2, instances default -> default"
    page = client.get(url).content.decode()
    assert "<td>0</td><td>2</td></tr>" in page


@override_settings(GPUADMIN_ACCOUNT_LIMITS=LIMITS)
def test_the_spin_up_form_names_the_limit_above_the_form_and_creates_nothing(client, superuser, fleet):
    spin_up(fleet, superuser, gpus=4)
    client.force_login(superuser)
    response = client.post(
        reverse("admin:spin_up"),
        {
            "account": fleet.customer.pk,
            "plan": fleet.plans[1].pk,
            "region": fleet.region.pk,
            "image": fleet.image.pk,
            "label": "",
            "authorized_keys": "",
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert errors == [
        "Account Limit reached. Please open a support ticket. Render Farm may hold at most 4 GPUs at once "
        "(the default for customer accounts); it holds 4 and g1-gpu-rtx6000-1 needs 1."
    ]
    assert Instance.objects.count() == 1
