import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.flags import (
    GPU_INSTANCES,
    answers_kept,
    gpu_plans_visible,
    gpu_plans_visible_for,
    gpu_plans_visible_to_account,
    provisioning_enabled,
)
from accounts.models import Account
from gpuadmin.models import Flag
from tests.builders import make_account, make_user

pytestmark = pytest.mark.django_db


def test_gpu_plans_are_dark_launched_to_employee_accounts():
    employee = make_user(account=make_account(kind=Account.Kind.EMPLOYEE))
    customer = make_user(account=make_account(kind=Account.Kind.CUSTOMER))
    assert gpu_plans_visible(user=employee)
    assert not gpu_plans_visible(user=customer)
    assert not gpu_plans_visible(user=None)


def test_a_flagged_customer_account_sees_gpu_plans_for_every_user():
    account = make_account()
    first, second = make_user(account=account), make_user(account=account)
    Flag.objects.get(name=GPU_INSTANCES).accounts.add(account)
    assert gpu_plans_visible(user=first) and gpu_plans_visible(user=second)
    assert not gpu_plans_visible(user=make_user())


def test_launch_is_everyone_on_and_kill_is_everyone_off():
    customer = make_user()
    employee = make_user(account=make_account(kind=Account.Kind.EMPLOYEE))
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)
    assert gpu_plans_visible(user=customer) and gpu_plans_visible(user=None)
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=False)
    assert not gpu_plans_visible(user=employee)


def test_provisioning_switch_starts_on():
    assert provisioning_enabled()


def test_an_accounts_own_access_counts_its_kind_its_name_and_the_launch_never_a_persons_entry():
    flag = Flag.objects.get(name=GPU_INSTANCES)
    employees, listed, plain = make_account(kind=Account.Kind.EMPLOYEE), make_account(), make_account()
    flag.accounts.add(listed)
    person = make_user(account=plain)
    flag.users.add(person)  # lets this user in, not the account
    staff = make_user(staff=True)  # a superuser: in the flag's audience as a person

    assert gpu_plans_visible_to_account(account=employees)
    assert gpu_plans_visible_to_account(account=listed)
    assert not gpu_plans_visible_to_account(account=plain)
    # Acting for an account: its own user is asked about as a person, anyone else gets the account's answer.
    assert gpu_plans_visible_for(actor=person, account=plain)
    assert not gpu_plans_visible_for(actor=staff, account=plain)
    assert gpu_plans_visible_for(actor=staff, account=listed)
    assert not gpu_plans_visible_for(actor=None, account=plain)

    Flag.objects.filter(pk=flag.pk).update(everyone=True)
    assert gpu_plans_visible_to_account(account=plain)
    Flag.objects.filter(pk=flag.pk).update(everyone=False)
    assert not gpu_plans_visible_to_account(account=employees)


def test_within_a_request_a_flag_is_decided_once_per_user_and_the_next_request_asks_again():
    customer = make_user()
    employee = make_user(account=make_account(kind=Account.Kind.EMPLOYEE))
    with answers_kept():
        assert not gpu_plans_visible(user=customer)
        assert gpu_plans_visible(user=employee)  # another user: asked on its own
        Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)
        assert provisioning_enabled()
        with CaptureQueriesContext(connection) as asked:
            assert not gpu_plans_visible(user=customer)  # the request keeps its first answer
            assert provisioning_enabled()
        assert asked.captured_queries == []
    with answers_kept():
        assert gpu_plans_visible(user=customer)  # the launch, at the next request
    assert gpu_plans_visible(user=None)  # outside a request: asked every time


def test_an_employee_read_with_its_account_is_let_in_without_the_flags_users_and_groups():
    employee = make_user(account=make_account(kind=Account.Kind.EMPLOYEE))
    read_with_account = type(employee).objects.select_related("membership__account").get(pk=employee.pk)
    with CaptureQueriesContext(connection) as asked:
        assert gpu_plans_visible(user=read_with_account)
    assert [
        q["sql"] for q in asked.captured_queries if "flag_users" in q["sql"] or "flag_groups" in q["sql"]
    ] == []
    plain = type(employee).objects.get(pk=employee.pk)  # its account not in hand: waffle's order
    assert gpu_plans_visible(user=plain)
