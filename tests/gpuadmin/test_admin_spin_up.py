"""The one-click "Spin up GPU Linode" form: it creates through instance_create, or says why not and
writes nothing."""

import json
import re

import pytest
from django.urls import reverse
from waffle.models import Switch

from accounts.flags import PROVISIONING_ENABLED
from accounts.models import AuditRecord, Origin
from inventory.models import Host
from provisioning.cloudinit import random_root_pass
from provisioning.models import Allocation, Instance, Job
from tests.builders import make_account, make_allocation, make_gpu_host, make_instance, make_region, make_user
from tests.gpuadmin.conftest import make_staff, texts

pytestmark = pytest.mark.django_db

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGpuYWRtaW4tdGVzdC1rZXktbm90LXJlYWw staff@example.com"


def form_data(fleet, **overrides) -> dict:
    data = {
        "account": fleet.customer.pk,
        "plan": fleet.plans[1].pk,
        "region": fleet.region.pk,
        "image": fleet.image.pk,
        "label": "",
        "authorized_keys": "",
    }
    return {**data, **overrides}


def nothing_written() -> bool:
    return not (Instance.objects.exists() or Allocation.objects.exists() or Job.objects.exists())


def errors_of(response) -> dict:
    form = response.context["form"]
    return {field or "__all__": [str(e) for e in errs] for field, errs in form.errors.items()}


def test_the_form_is_prefilled_from_the_dashboard_button(client, fleet, superuser):
    client.force_login(superuser)
    response = client.get(reverse("admin:spin_up"), {"plan": "g1-gpu-rtx6000-2", "region": "us-east"})
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<option value="g1-gpu-rtx6000-2" selected>', html)
    assert re.search(
        r'<option value="us-east" selected[^>]*>us-east \(Newark, NJ\): 4 sellable</option>', html
    )
    # only GPU plans are offered
    assert "g6-standard" not in html


def test_the_form_is_laid_out_in_admin_fieldsets(client, fleet, superuser):
    client.force_login(superuser)
    html = client.get(reverse("admin:spin_up")).content.decode()
    headings = re.findall(r'<h2 id="fieldset-0-\d-heading" class="fieldset-heading">(.*?)</h2>', html)
    assert headings == ["For whom", "What", "Where", "Access"]
    assert html.count('<fieldset class="module aligned ') == 4
    assert "admin/css/forms.css" in html and "gpuadmin/spin_up.js" in html
    # The account is chosen through the admin's own autocomplete (its vendored select2, no CDN).
    assert 'class="admin-autocomplete' in html and "admin/js/autocomplete.js" in html
    assert "//cdn" not in html and "https://" not in html.split("<body")[0]


def test_only_regions_that_sell_the_plan_are_offered_with_the_count(client, fleet, superuser):
    make_gpu_host(region=make_region("ap-west", "Mumbai, IN", "in"), gpus_per_node=1)  # 1-GPU nodes only
    make_region("us-central", "Dallas, TX", "us")  # no GPU host at all
    client.force_login(superuser)

    def offered(plan: str) -> list[str]:
        html = client.get(reverse("admin:spin_up"), {"plan": plan}).content.decode()
        select = re.search(r'<select name="region".*?</select>', html, re.S)[0]
        return re.findall(r'<option value="[^"]+"[^>]*>(.*?)</option>', select)

    assert offered("g1-gpu-rtx6000-1") == [
        "ap-west (Mumbai, IN): 2 sellable",
        "us-east (Newark, NJ): 8 sellable",
    ]
    assert offered("g1-gpu-rtx6000-4") == ["us-east (Newark, NJ): 2 sellable"]
    # Each region carries every plan's count, for the page to relabel when the plan changes.
    html = client.get(reverse("admin:spin_up")).content.decode()
    sellable = re.search(r'<option value="ap-west" data-sellable="([^"]+)"', html)[1].replace("&quot;", '"')
    assert json.loads(sellable) == {
        "g1-gpu-rtx6000-1": 2,
        "g1-gpu-rtx6000-2": 1,  # one card from each node
        "g1-gpu-rtx6000-3": 0,
        "g1-gpu-rtx6000-4": 0,
    }
    assert "us-central" not in re.search(r'<select name="region".*?</select>', html, re.S)[0]


def test_every_error_shows_at_once(client, fleet, superuser):
    make_instance(plan=fleet.plans[1], account=fleet.customer, label="trainer-1")
    for host in fleet.hosts:
        Host.objects.filter(pk=host.pk).update(state=Host.State.DRAINING)
    client.force_login(superuser)

    response = client.post(
        reverse("admin:spin_up"), form_data(fleet, label="trainer-1", authorized_keys="not a key")
    )

    errors = errors_of(response)
    assert set(errors) == {"__all__", "label", "authorized_keys"}
    assert errors["label"] == ["Label must be unique among your linodes"]
    assert errors["authorized_keys"][0].startswith("authorized_keys must be SSH public keys")
    assert errors["__all__"][0].startswith("No capacity: ")
    assert b"Please correct the errors below." in response.content
    assert Instance.objects.count() == 1 and not Job.objects.exists()


def test_a_bad_field_and_a_missing_choice_show_together(client, fleet, superuser):
    client.force_login(superuser)
    response = client.post(reverse("admin:spin_up"), form_data(fleet, plan="", label="a"))
    errors = errors_of(response)
    assert set(errors) == {"plan", "label"} and errors["label"][0].startswith("Label must be 3-64")
    assert nothing_written()


def test_spin_up_creates_the_instance_and_its_job_and_shows_the_password_once(client, fleet, superuser):
    client.force_login(superuser)

    response = client.post(
        reverse("admin:spin_up"),
        form_data(fleet, plan=fleet.plans[2].pk, label="trainer-1", authorized_keys=SSH_KEY),
    )

    instance = Instance.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:provisioning_instance_change", args=[instance.pk])
    assert (instance.label, instance.account, instance.instance_type_id) == (
        "trainer-1",
        fleet.customer,
        "g1-gpu-rtx6000-2",
    )
    assert instance.host in fleet.hosts and instance.status == Instance.Status.PROVISIONING
    job = Job.objects.get()
    assert (job.instance, job.action, job.actor, job.origin) == (
        instance,
        Job.Action.CREATE,
        superuser,
        Origin.STAFF,
    )
    assert Allocation.objects.get(instance=instance).gpus.count() == 2
    assert AuditRecord.objects.filter(
        action="instance.create", actor=superuser, target_id=str(instance.pk)
    ).exists()
    [(level, text)] = texts(response)
    assert level == "success"
    assert f'"trainer-1" (id {instance.pk}) is being created for Render Farm in us-east' in text
    password = text.rsplit(": ", 1)[1]
    assert len(password) == 24
    assert password not in instance.cloud_init_user_data  # only its hash is kept
    assert SSH_KEY in instance.cloud_init_user_data

    page = client.get(response["Location"])
    assert page.status_code == 200 and password.encode() in page.content
    again = client.get(response["Location"])
    assert password.encode() not in again.content  # shown once


def test_generated_passwords_are_random_and_mix_every_character_class():
    passwords = {random_root_pass() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert re.search(r"[a-z]", password) and re.search(r"[A-Z]", password)
        assert re.search(r"[0-9]", password) and re.search(r"[^A-Za-z0-9]", password)


def test_no_capacity_is_a_form_error_with_the_detail_and_writes_nothing(client, fleet, superuser):
    for host in fleet.hosts:
        Host.objects.filter(pk=host.pk).update(state=Host.State.DRAINING)
    client.force_login(superuser)

    response = client.post(reverse("admin:spin_up"), form_data(fleet))

    assert response.status_code == 200
    [error] = errors_of(response)["__all__"]
    assert error.startswith("No capacity: ") and "us-east" in error
    assert nothing_written()
    assert b"No capacity: " in response.content


def test_no_capacity_when_every_gpu_is_taken(client, fleet, superuser):
    for host in fleet.hosts:
        make_allocation(
            instance=make_instance(plan=fleet.plans[4], region=fleet.region),
            host=host,
            gpus=4,
            vcpus=24,
            memory_mib=128 * 1024,
        )
    before = (Instance.objects.count(), Allocation.objects.count(), Job.objects.count())
    client.force_login(superuser)

    response = client.post(reverse("admin:spin_up"), form_data(fleet))

    assert "No capacity: " in errors_of(response)["__all__"][0]
    assert (Instance.objects.count(), Allocation.objects.count(), Job.objects.count()) == before


def test_the_target_accounts_flag_decides_not_the_staff_members(client, fleet, superuser):
    outsider = make_account(name="not-in-beta")  # a customer the gpu_instances flag does not name
    client.force_login(superuser)  # superusers see GPU plans themselves

    response = client.post(reverse("admin:spin_up"), form_data(fleet, account=outsider.pk))

    assert errors_of(response) == {
        "plan": [
            "not-in-beta does not see GPU plans: the gpu_instances flag does not let this account in "
            "(add it to the flag, or launch)."
        ]
    }
    assert nothing_written()


def test_staff_outside_the_flag_may_spin_up_for_an_account_in_it(client, fleet):
    # A plain staff member is in no audience of the flag (waffle lets superusers in, not staff).
    staff = make_staff("provisioning.add_instance")
    client.force_login(staff)

    response = client.post(reverse("admin:spin_up"), form_data(fleet))

    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.account, job.actor, job.origin) == (fleet.customer, staff, Origin.STAFF)


def test_a_taken_label_is_an_error_on_the_label(client, fleet, superuser):
    make_instance(plan=fleet.plans[1], account=fleet.customer, label="trainer-1")
    client.force_login(superuser)

    response = client.post(reverse("admin:spin_up"), form_data(fleet, label="trainer-1"))

    assert errors_of(response) == {"label": ["Label must be unique among your linodes"]}
    assert Instance.objects.count() == 1 and not Job.objects.exists() and not Allocation.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"label": "a"}, "label", "Label must be 3-64 characters"),
        ({"label": "two--dashes"}, "label", "Label must not contain two dashes"),
        ({"authorized_keys": "not a key"}, "authorized_keys", "authorized_keys must be SSH public keys"),
    ],
)
def test_invalid_requests_are_errors_on_their_field(client, fleet, superuser, overrides, field, message):
    client.force_login(superuser)
    response = client.post(reverse("admin:spin_up"), form_data(fleet, **overrides))
    assert list(errors_of(response)) == [field]
    assert errors_of(response)[field][0].startswith(message)
    assert nothing_written()


def test_paused_provisioning_is_a_form_error(client, fleet, superuser):
    Switch.objects.filter(name=PROVISIONING_ENABLED).update(active=False)
    client.force_login(superuser)
    response = client.post(reverse("admin:spin_up"), form_data(fleet))
    assert errors_of(response) == {
        "__all__": ["Provisioning is paused by the operators; no new instances can be created now."]
    }
    assert nothing_written()


def test_a_missing_choice_is_a_form_error_before_any_service_call(client, fleet, superuser):
    client.force_login(superuser)
    response = client.post(reverse("admin:spin_up"), form_data(fleet, plan="g6-standard-2", region=""))
    assert set(errors_of(response)) == {"plan", "region"}
    assert nothing_written()


def test_only_staff_with_the_add_permission_may_spin_up(client, fleet):
    client.force_login(make_staff("provisioning.view_instance", "provisioning.change_instance"))
    assert client.get(reverse("admin:spin_up")).status_code == 403
    assert client.post(reverse("admin:spin_up"), form_data(fleet)).status_code == 403
    assert nothing_written()

    client.force_login(make_user())  # not staff: the admin sends it to the login page
    response = client.post(reverse("admin:spin_up"), form_data(fleet))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    assert nothing_written()


def test_add_instance_in_the_admin_is_the_spin_up_form(client, fleet, superuser):
    client.force_login(superuser)
    response = client.get(reverse("admin:provisioning_instance_add"), {"region": "us-east"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:spin_up") + "?region=us-east"
    listing = client.get(reverse("admin:provisioning_instance_changelist")).content.decode()
    assert 'id="spin-up-gpu-linode"' in listing and "Spin up GPU Linode" in listing
