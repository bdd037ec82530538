import re

import pytest

from accounts.flags import GPU_INSTANCES
from gpuadmin.models import Flag

pytestmark = pytest.mark.django_db


def test_profile_is_the_token_users(customer, bob):
    response = bob.get("/v4/profile")
    assert response.status_code == 200
    body = response.json()
    assert (body["username"], body["email"], body["uid"]) == ("bob", "bob@example.com", customer.pk)
    assert body["restricted"] is False and body["timezone"] == "UTC"


def test_profile_needs_a_token_but_no_scope(customer, anonymous):
    from tests.api.conftest import token_for

    assert anonymous.get("/v4/profile").status_code == 401
    assert anonymous.as_(token_for(customer, "events:read_only")).get("/v4/profile").status_code == 200


def test_account_balances_read_zero_until_billing(customer, bob):
    response = bob.get("/v4/account")
    assert response.status_code == 200
    body = response.json()
    account = customer.membership.account
    assert body["email"] == account.email and body["company"] == ""
    assert body["balance"] == 0 and body["balance_uninvoiced"] == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", body["active_since"])
    assert re.fullmatch(r"[0-9A-F-]{36}", body["euuid"])
    assert body["capabilities"] == ["Linodes"]


def test_account_capabilities_follow_the_flag(employee, alice, bob):
    assert "GPU Linodes" in alice.get("/v4/account").json()["capabilities"]
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)
    assert "GPU Linodes" in bob.get("/v4/account").json()["capabilities"]
