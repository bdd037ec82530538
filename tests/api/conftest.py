"""What API tests share: a small GPU world, accounts with tokens, and a client that speaks JSON."""

import json
from dataclasses import dataclass

import pytest
from django.core.cache import caches
from django.test import Client

from accounts.models import Account
from accounts.services import api_token_create
from tests.builders import (
    make_account,
    make_gpu_host,
    make_gpu_plan,
    make_image,
    make_region,
    make_standard_host,
    make_standard_plan,
    make_user,
)


@dataclass
class Api:
    """A test client that sends a bearer token (or none) and JSON bodies, like Linode's SDK."""

    client: Client
    token: str | None = None

    def _headers(self, headers: dict | None) -> dict:
        sent = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}
        for name, value in (headers or {}).items():
            sent["HTTP_" + name.upper().replace("-", "_")] = value
        return sent

    def get(self, path: str, *, filters: dict | None = None, headers: dict | None = None, **params):
        headers = dict(headers or {})
        if filters is not None:
            headers["X-Filter"] = json.dumps(filters)
        return self.client.get(path, params, **self._headers(headers))

    def post(self, path: str, body=None, *, headers: dict | None = None):
        data = json.dumps(body) if body is not None else ""
        return self.client.post(path, data, content_type="application/json", **self._headers(headers))

    def put(self, path: str, body=None, *, headers: dict | None = None):
        return self.client.put(
            path, json.dumps(body or {}), content_type="application/json", **self._headers(headers)
        )

    def delete(self, path: str, *, headers: dict | None = None):
        return self.client.delete(path, **self._headers(headers))

    def as_(self, token: str | None) -> "Api":
        return Api(self.client, token)


@dataclass
class World:
    """us-east and ap-west have GPU hosts, us-central only standard ones."""

    gpu_plan: object
    gpu_plan_2: object
    standard_plan: object
    image: object


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    caches["default"].clear()
    yield
    caches["default"].clear()


@pytest.fixture
def world(db) -> World:
    us_east = make_region("us-east", "Newark, NJ", "us")
    ap_west = make_region("ap-west", "Mumbai, IN", "in")
    us_central = make_region("us-central", "Dallas, TX", "us")
    make_gpu_host(region=us_east)
    make_gpu_host(region=ap_west, numa_nodes=1, gpus_per_node=1)
    make_standard_host(region=us_central)
    return World(
        gpu_plan=make_gpu_plan(1),
        gpu_plan_2=make_gpu_plan(2),
        standard_plan=make_standard_plan(2),
        image=make_image("linode/ubuntu22.04"),
    )


def token_for(user, scopes: str = "*", **kwargs) -> str:
    return api_token_create(user=user, scopes=scopes, **kwargs).secret


@pytest.fixture
def employee(db):
    return make_user(account=make_account(kind=Account.Kind.EMPLOYEE), username="alice")


@pytest.fixture
def customer(db):
    return make_user(account=make_account(kind=Account.Kind.CUSTOMER), username="bob")


@pytest.fixture
def anonymous(client) -> Api:
    return Api(client)


@pytest.fixture
def alice(client, employee) -> Api:
    """An employee account: the gpu_instances flag is on for it (data migration)."""
    return Api(client, token_for(employee))


@pytest.fixture
def bob(client, customer) -> Api:
    """A customer account: GPU plans hidden until launch."""
    return Api(client, token_for(customer))


def errors(response) -> list[dict]:
    body = response.json()
    assert set(body) == {"errors"}, body
    assert body["errors"] and all("reason" in e for e in body["errors"]), body
    return body["errors"]


def reasons(response) -> list[str]:
    return [e["reason"] for e in errors(response)]
