"""A suspended account (Account.active off) can do nothing: each of its tokens is refused on every
endpoint with Linode's error body, staff cannot spin up for it, and a create it queued before the
suspension fails cleanly when its job runs (nothing built, allocation released, not billed).

On the issue's main the suspended account's token still created instances (200) and accrued an invoice;
only the admin spin-up form's account list checked `active`.
"""

import pytest
from django.urls import reverse

from accounts.models import Account
from billing.models import UsageSegment
from billing.services import usage_sync
from gpuadmin.api.authentication import ACCOUNT_SUSPENDED
from provisioning import services
from provisioning.exceptions import AccountSuspended
from provisioning.models import Allocation, Instance, Job
from tests.api.conftest import Api, errors, token_for
from tests.builders import make_user

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/v4/regions"),  # public: a token, when sent, is still checked
    ("get", "/v4/linode/types"),
    ("get", "/v4/linode/instances"),
    ("post", "/v4/linode/instances"),
    ("get", "/v4/account"),
    ("get", "/v4/account/events"),
    ("get", "/v4/account/invoices"),
    ("get", "/v4/profile"),
]


def suspend(account: Account) -> None:
    Account.objects.filter(pk=account.pk).update(active=False)


def create_body(world) -> dict:
    return {"type": world.gpu_plan.id, "region": "us-east", "image": "linode/ubuntu22.04",
            "root_pass": "Corr3ct-Horse-9"}  # fmt: skip


def test_every_token_of_a_suspended_account_is_refused_everywhere(client, world, employee, alice, bob):
    account = employee.membership.account
    teammate = make_user(account=account, username="alice-2")
    tokens = [alice.token, token_for(teammate, scopes="linodes:read_only"), token_for(employee, label="ci")]
    assert alice.post("/v4/linode/instances", {**create_body(world), "label": "before"}).status_code == 200
    suspend(account)
    for token in tokens:
        api = Api(client, token)
        for method, path in ENDPOINTS:
            body = [create_body(world)] if method == "post" else []
            response = getattr(api, method)(path, *body)
            assert response.status_code == 403, (token, path, response.content)
            assert errors(response) == [{"reason": ACCOUNT_SUSPENDED}]
        assert api.get(f"/v4/linode/instances/{Instance.objects.get().pk}").status_code == 403
    assert Instance.objects.count() == 1  # nothing created after the suspension
    # Another account is not affected, and the same endpoints answer without a token.
    assert bob.get("/v4/linode/instances").status_code == 200
    assert Api(client).get("/v4/regions").status_code == 200


def test_reactivation_gives_the_tokens_back(world, employee, alice):
    suspend(employee.membership.account)
    assert alice.get("/v4/profile").status_code == 403
    Account.objects.filter(pk=employee.membership.account.pk).update(active=True)
    assert alice.get("/v4/profile").status_code == 200


def test_the_service_refuses_a_suspended_account_whoever_asks(world, employee):
    account = employee.membership.account
    suspend(account)
    account.refresh_from_db()
    staff = make_user(username="ops-admin", staff=True)
    with pytest.raises(AccountSuspended):
        services.instance_create(
            account=account, actor=staff, plan=world.gpu_plan,
            region=services.region_for(region_id="us-east"), image=world.image, root_pass="Corr3ct-Horse-9",
        )  # fmt: skip
    assert not Instance.objects.exists() and not Allocation.objects.exists()


def test_staff_cannot_spin_up_for_a_suspended_account(client, world, employee):
    account = employee.membership.account
    suspend(account)
    client.force_login(make_user(username="ops-admin", staff=True))
    response = client.post(
        reverse("admin:spin_up"),
        {"account": account.pk, "plan": world.gpu_plan.pk, "region": "us-east",
         "image": world.image.pk, "label": "", "authorized_keys": ""},
    )  # fmt: skip
    assert response.status_code == 200  # the form again, with the refusal
    assert "account" in response.context["form"].errors
    assert not Instance.objects.exists() and not Allocation.objects.exists() and not Job.objects.exists()


def test_a_create_queued_before_the_suspension_fails_cleanly(
    world, employee, alice, django_capture_on_commit_callbacks
):
    account = employee.membership.account
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = alice.post("/v4/linode/instances", {**create_body(world), "label": "queued-1"})
    assert response.status_code == 200
    instance = Instance.objects.get(pk=response.json()["id"])
    allocation = Allocation.objects.get(instance=instance)
    held_gpus = list(allocation.gpus.values_list("gpu_id", flat=True))
    assert held_gpus
    suspend(account)
    for callback in queued:  # the worker takes the create job now
        callback()

    job = Job.objects.get(instance=instance, action=Job.Action.CREATE)
    instance.refresh_from_db()
    allocation.refresh_from_db()
    assert job.status == Job.Status.FAILED and "the account is suspended" in job.error
    assert instance.status == Instance.Status.FAILED
    assert allocation.released_at is not None  # the cards and cores are free for others
    assert not Allocation.objects.filter(released_at__isnull=True).exists()
    usage_sync()
    assert not UsageSegment.objects.filter(instance=instance).exists()  # a failed create is not billed
    # The job run again (a redelivery) changes nothing.
    from provisioning.workflows import job_run

    assert "already failed" in job_run(job_id=job.pk)
