"""Account limits: how many GPUs and instances an account may hold at once, checked inside the create
transaction under the account's row lock, so racing creates cannot pass a limit together."""

from collections import Counter

import pytest
from django.test import override_settings

from accounts.limits import account_limits
from accounts.models import Account, AuditRecord
from accounts.services import account_create, account_limits_set
from provisioning.exceptions import AccountLimitReached
from provisioning.models import Allocation, Instance, Job
from provisioning.selectors import account_usage
from provisioning.services import instance_create, instance_create_problems, instance_delete, instance_resize
from tests.builders import make_account, make_gpu_plan, make_image, make_region, make_user
from tests.concurrency import race as concurrently
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.helpers import ROOT_PASS, create

pytestmark = pytest.mark.django_db

LIMITS = {
    "customer": {"gpus": 3, "instances": 2},
    "employee": {"gpus": None, "instances": None},
    "internal": {"gpus": None, "instances": None},
}


@pytest.fixture
def customer(db):
    return make_user(account=account_create(name="Render Farm", email="ops@render.example"))


@pytest.fixture(autouse=True)
def _gpu_plans_visible(db):
    from accounts.flags import GPU_INSTANCES
    from gpuadmin.models import Flag

    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)


@override_settings(GPUADMIN_ACCOUNT_LIMITS=LIMITS)
def test_the_kinds_default_refuses_the_gpu_past_it_in_linodes_words_and_writes_nothing(
    customer, gpu_host, plans, region, image
):
    create(user=customer, plan=plans[2], region=region, image=image)
    before = (Instance.objects.count(), Allocation.objects.count(), Job.objects.count())
    with pytest.raises(AccountLimitReached) as refused:
        create(user=customer, plan=plans[2], region=region, image=image)
    assert refused.value.limit == "gpus"
    assert refused.value.message == (
        "Account Limit reached. Please open a support ticket. Render Farm may hold at most 3 GPUs at once "
        "(the default for customer accounts); it holds 2 and g1-gpu-rtx6000-2 needs 2."
    )
    assert (Instance.objects.count(), Allocation.objects.count(), Job.objects.count()) == before
    create(user=customer, plan=plans[1], region=region, image=image)  # exactly up to the limit
    assert account_usage(account_id=customer.membership.account.pk).gpus == 3


@override_settings(GPUADMIN_ACCOUNT_LIMITS=LIMITS)
def test_the_instance_limit_counts_live_instances_not_failed_or_deleted_ones(
    customer, gpu_host, plans, region, image
):
    account = customer.membership.account
    first = create(user=customer, plan=plans[1], region=region, image=image)
    second = create(user=customer, plan=plans[1], region=region, image=image)
    with pytest.raises(AccountLimitReached) as refused:
        create(user=customer, plan=plans[1], region=region, image=image)
    assert refused.value.limit == "instances"
    assert (
        "Render Farm may have at most 2 instances at once (the default for customer accounts); it has 2."
        in (refused.value.message)
    )
    Instance.objects.filter(pk=first.pk).update(status=Instance.Status.FAILED)
    third = create(user=customer, plan=plans[1], region=region, image=image)
    instance_delete(instance=second, actor=customer)
    create(user=customer, plan=plans[1], region=region, image=image)
    assert account_usage(account_id=account.pk).instances == 2
    assert third.pk


@override_settings(GPUADMIN_ACCOUNT_LIMITS=LIMITS)
def test_the_accounts_own_limit_wins_over_the_default_and_is_audited(
    customer, gpu_host, plans, region, image
):
    account = customer.membership.account
    staff = make_user(username="ops", staff=True)
    account_limits_set(account=account, gpu_limit=4, instance_limit=None, actor=staff)
    limits = account_limits(account=account)
    assert (limits.gpus.value, limits.gpus.default, limits.instances.value, limits.instances.default) == (
        4,
        False,
        2,
        True,
    )
    create(user=customer, plan=plans[4], region=region, image=image)
    with pytest.raises(AccountLimitReached) as refused:
        create(user=customer, plan=plans[1], region=region, image=image)
    assert "may hold at most 4 GPUs at once; it holds 4" in refused.value.message  # no "(default)"
    record = AuditRecord.objects.get(action="account.limits")
    assert record.actor == staff and record.detail == "GPUs default -> 4, instances default -> default"


@override_settings(GPUADMIN_ACCOUNT_LIMITS=LIMITS)
def test_the_problems_list_names_the_limit_as_the_create_would(customer, gpu_host, plans, region, image):
    create(user=customer, plan=plans[2], region=region, image=image)

    def problems(plan):
        return instance_create_problems(
            account=customer.membership.account,
            actor=customer,
            plan=plan,
            region=region,
            image=image,
            root_pass=ROOT_PASS,
        )

    assert problems(plans[1]) == []  # 2 + 1: exactly the limit of 3
    assert [type(p) for p in problems(plans[2])] == [AccountLimitReached]


@override_settings(GPUADMIN_ACCOUNT_LIMITS=LIMITS)
def test_a_resize_past_the_gpu_limit_is_refused_and_changes_nothing(
    customer, gpu_host, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=customer, plan=plans[2], region=region, image=image)
    instance.refresh_from_db()
    assert instance.status == Instance.Status.RUNNING
    with pytest.raises(AccountLimitReached):
        instance_resize(instance=instance, actor=customer, plan=plans[4])
    instance.refresh_from_db()
    assert instance.status == Instance.Status.RUNNING and instance.instance_type_id == plans[2].pk
    assert not Job.objects.filter(action=Job.Action.RESIZE).exists()
    job = instance_resize(instance=instance, actor=customer, plan=plans[3])  # 3 GPUs: exactly the limit
    assert job.params["to"] == plans[3].pk


def test_employee_accounts_have_no_default_limit_in_the_shipped_settings():
    from gpuadmin import settings as shipped

    assert shipped.GPUADMIN_ACCOUNT_LIMITS["customer"] == {"gpus": 8, "instances": 10}
    assert shipped.GPUADMIN_ACCOUNT_LIMITS["employee"] == {"gpus": None, "instances": None}


THREADS = 16


def race_creates(*, user, plan, region, image, tag: str) -> list:
    """THREADS creates for the user's account released at once; each outcome, in order."""
    account = user.membership.account

    def create_at(position: int):
        return lambda: instance_create(
            account=account,
            actor=user,
            plan=plan,
            region=region,
            image=image,
            label=f"{tag}-{position}",
            root_pass=ROOT_PASS,
            booted=False,
        )

    return concurrently([create_at(position) for position in range(THREADS)], what="a create")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("limit_kind", ["gpus", "instances"])
def test_racing_creates_cannot_pass_a_limit_together(limit_kind):
    """Sixteen creates of a 1-GPU plan at once, for an account that may hold 3 (GPUs, or instances), in a
    region with room for 16: exactly three win, the others hear the limit (never the capacity)."""
    from accounts.flags import GPU_INSTANCES
    from gpuadmin.models import Flag

    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)
    region = make_region("race-limits", label="Race")
    for _ in range(4):  # 16 cards on test-driver hosts, so the create jobs that run on commit succeed
        enroll_rtx_host(region)
    plan, image = make_gpu_plan(1), make_image("linode/ubuntu22.04")
    user = make_user(account=make_account(kind=Account.Kind.CUSTOMER))
    account = user.membership.account
    own = {
        "gpus": {"gpu_limit": 3, "instance_limit": 100},
        "instances": {"gpu_limit": 100, "instance_limit": 3},
    }
    account_limits_set(account=account, actor=None, **own[limit_kind])

    outcomes = race_creates(user=user, plan=plan, region=region, image=image, tag=limit_kind)

    kinds = Counter(type(o).__name__ for o in outcomes)
    assert kinds == {"Instance": 3, "AccountLimitReached": THREADS - 3}, outcomes
    assert {o.limit for o in outcomes if isinstance(o, AccountLimitReached)} == {limit_kind}
    assert Instance.objects.filter(account=account, deleted_at__isnull=True).count() == 3
    assert Allocation.objects.filter(instance__account=account, released_at__isnull=True).count() == 3
    assert set(Instance.objects.filter(account=account).values_list("status", flat=True)) == {"offline"}
