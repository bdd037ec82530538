"""Every endpoint x {no token, bad token, expired, wrong scope, other account, right account}.

Public endpoints answer without a token but refuse a bad one; another account's Linode or event is a
404 (never a 403, which would confirm it exists); a token without the scope is a 403.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiToken
from provisioning.models import Job
from tests.api.conftest import errors, token_for
from tests.builders import make_user

pytestmark = pytest.mark.django_db

CASES = ("no token", "bad token", "expired", "wrong scope", "other account", "right account")
GPU = {
    "type": "g1-gpu-rtx6000-1",
    "region": "us-east",
    "image": "linode/ubuntu22.04",
    "root_pass": "Corr3ct-Horse-9",
}

# method, path ({id}: the owner's Linode, {event}: its create event, {ip}: its address), body, scope,
# other-account status
ENDPOINTS = [
    ("get", "/v4/regions", None, None, 200),
    ("get", "/v4/regions/us-east", None, None, 200),
    ("get", "/v4/regions/availability", None, None, 200),
    ("get", "/v4/regions/us-east/availability", None, None, 200),
    ("get", "/v4/linode/types", None, None, 200),
    ("get", "/v4/linode/types/g6-standard-2", None, None, 200),
    ("get", "/v4/images", None, None, 200),
    ("get", "/v4/images/linode/ubuntu22.04", None, None, 200),
    ("get", "/v4/profile", None, "", 200),
    ("get", "/v4/account", None, "account:read_only", 200),
    ("get", "/v4/linode/instances", None, "linodes:read_only", 200),
    ("post", "/v4/linode/instances", GPU, "linodes:read_write", 200),
    ("get", "/v4/linode/instances/{id}", None, "linodes:read_only", 404),
    ("put", "/v4/linode/instances/{id}", {"label": "renamed"}, "linodes:read_write", 404),
    ("delete", "/v4/linode/instances/{id}", None, "linodes:read_write", 404),
    ("post", "/v4/linode/instances/{id}/shutdown", None, "linodes:read_write", 404),
    ("post", "/v4/linode/instances/{id}/reboot", None, "linodes:read_write", 404),
    ("post", "/v4/linode/instances/{id}/boot", None, "linodes:read_write", 404),
    ("post", "/v4/linode/instances/{id}/resize", {"type": "g1-gpu-rtx6000-2"}, "linodes:read_write", 404),
    ("get", "/v4/linode/instances/{id}/disks", None, "linodes:read_only", 404),
    ("get", "/v4/linode/instances/{id}/configs", None, "linodes:read_only", 404),
    ("get", "/v4/linode/instances/{id}/ips", None, "linodes:read_only", 404),
    ("get", "/v4/networking/ips", None, "ips:read_only", 200),
    ("get", "/v4/networking/ips/{ip}", None, "ips:read_only", 404),
    ("get", "/v4/account/events", None, "events:read_only", 200),
    ("get", "/v4/account/events/{event}", None, "events:read_only", 404),
]
# A scope that is real but not enough for each needed one.
WRONG = {
    "account:read_only": "linodes:read_write",
    "linodes:read_only": "account:read_write events:read_only",
    "linodes:read_write": "linodes:read_only",
    "events:read_only": "linodes:read_write",
    "ips:read_only": "linodes:read_write",
}


def expected_status(case: str, scope: str | None, other_status: int) -> int:
    if case in ("bad token", "expired"):
        return 401
    if case == "no token":
        return 200 if scope is None else 401
    if case == "wrong scope":
        return 403 if scope else 200
    if case == "other account":
        return other_status
    return 200


@pytest.fixture
def owner(world, employee):
    return employee


@pytest.fixture
def owned_linode(owner):
    from accounts.selectors import account_of
    from provisioning import services
    from provisioning.services import image_for, plan_for, region_for

    instance = services.instance_create(
        account=account_of(user=owner),
        actor=owner,
        plan=plan_for(user=owner, plan_id="g1-gpu-rtx6000-1"),
        region=region_for(region_id="us-east"),
        image=image_for(image_id="linode/ubuntu22.04"),
        root_pass="Corr3ct-Horse-9",
    )
    # Whatever the inline task did, leave the Linode idle and running so every action is allowed.
    Job.objects.filter(instance=instance).update(status=Job.Status.FINISHED)
    instance.refresh_from_db()
    type(instance).objects.filter(pk=instance.pk).update(status="running", booted=True)
    return instance


def token_for_case(case: str, owner, scope: str | None) -> str | None:
    if case == "no token":
        return None
    if case == "bad token":
        return "0" * 64
    if case == "expired":
        secret = token_for(owner)
        ApiToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))
        return secret
    if case == "wrong scope":
        return token_for(owner, WRONG.get(scope or "", "events:read_only"))
    if case == "other account":
        return token_for(make_user())  # a customer account, with every scope
    return token_for(owner, scope or "events:read_only")


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("method", "path", "body", "scope", "other_status"), ENDPOINTS, ids=lambda v: v)
def test_authorization(anonymous, owner, owned_linode, case, method, path, body, scope, other_status):
    event = Job.objects.filter(instance=owned_linode).first()
    path = path.format(id=owned_linode.pk, event=event.pk, ip=owned_linode.ipv4[0])
    api = anonymous.as_(token_for_case(case, owner, scope))
    if case == "other account" and method == "post" and path == "/v4/linode/instances":
        body = {"type": "g6-standard-2", "region": "us-central"}  # GPU plans are hidden from that customer
    send = getattr(api, method)
    response = send(path, body) if method in ("post", "put") else send(path)
    expected = expected_status(case, scope, other_status)
    assert response.status_code == expected, (case, response.content)
    if expected == 401:
        assert errors(response) == [{"reason": "Invalid Token"}]
        assert response["WWW-Authenticate"].startswith("Bearer")
    if expected == 403:
        assert errors(response) == [{"reason": "Your OAuth token is not authorized to use this endpoint."}]
        assert response["X-Accepted-OAuth-Scopes"] == scope
    if expected == 404:
        assert errors(response) == [{"reason": "Not found"}]
    if expected == 200 and case != "no token" and scope:
        assert response["X-Accepted-OAuth-Scopes"] == scope
        assert response["X-OAuth-Scopes"]
        assert int(response["X-RateLimit-Remaining"]) >= 0
