from decimal import Decimal

import pytest

from accounts.models import Account
from inventory.models import InstanceType
from tests.builders import make_account, make_gpu_plan, make_region, make_standard_plan


@pytest.fixture
def region(db):
    return make_region("us-east")


@pytest.fixture
def gpu1(region) -> InstanceType:
    """Linode's 1 x RTX 6000 plan: $1.50 an hour, capped at $1000 a month."""
    plan = make_gpu_plan(1)
    assert (plan.price_hourly, plan.price_monthly) == (Decimal("1.50"), Decimal("1000.00"))
    return plan


@pytest.fixture
def gpu2(region) -> InstanceType:
    return make_gpu_plan(2)


@pytest.fixture
def standard(region) -> InstanceType:
    return make_standard_plan(2)


@pytest.fixture
def customer(db) -> Account:
    return make_account(kind=Account.Kind.CUSTOMER)


@pytest.fixture
def employee(db) -> Account:
    return make_account(kind=Account.Kind.EMPLOYEE)
