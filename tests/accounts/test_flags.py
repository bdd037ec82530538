import pytest

from accounts.flags import GPU_INSTANCES, gpu_plans_visible, provisioning_enabled
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
