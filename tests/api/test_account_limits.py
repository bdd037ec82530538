"""A create past the account's limit is a 403 in Linode's words that names the limit."""

import pytest
from django.test import override_settings

from accounts.services import account_limits_set
from provisioning.models import Instance
from tests.api.conftest import errors
from tests.api.test_instances import gpu_linode

pytestmark = pytest.mark.django_db


def test_a_create_past_the_gpu_limit_is_a_403_naming_the_limit(world, alice, employee):
    account = employee.membership.account
    account_limits_set(account=account, gpu_limit=2, instance_limit=None, actor=None)
    assert alice.post("/v4/linode/instances", gpu_linode(type="g1-gpu-rtx6000-2")).status_code == 200
    response = alice.post("/v4/linode/instances", gpu_linode())
    assert response.status_code == 403
    assert errors(response) == [
        {
            "reason": "Account Limit reached. Please open a support ticket. "
            f"{account.name} may hold at most 2 GPUs at once; it holds 2 and g1-gpu-rtx6000-1 needs 1."
        }
    ]
    assert Instance.objects.count() == 1


@override_settings(
    GPUADMIN_ACCOUNT_LIMITS={"employee": {"gpus": None, "instances": 1}, "customer": {}, "internal": {}}
)
def test_a_create_past_the_kinds_instance_limit_is_a_403_naming_it(world, alice, employee):
    assert alice.post("/v4/linode/instances", gpu_linode()).status_code == 200
    response = alice.post("/v4/linode/instances", gpu_linode(label="second"))
    assert response.status_code == 403
    (error,) = errors(response)
    assert error["reason"].startswith("Account Limit reached. Please open a support ticket. ")
    assert (
        "may have at most 1 instances at once (the default for employee accounts); it has 1."
        in error["reason"]
    )
