"""/v4/linode/instances/{id}/ips and /v4/networking/ips[/{address}]: the pool address each Linode holds,
in Linode's shapes; nobody sees another account's addresses; an exhausted pool is a clear 403."""

import pytest

from networking.models import Ipv4Address
from tests.api.conftest import Api, errors, reasons, token_for
from tests.api.test_instances import created, gpu_linode
from tests.builders import make_gpu_host, make_pool, make_region

pytestmark = pytest.mark.django_db

IP_KEYS = {
    "address", "gateway", "subnet_mask", "prefix", "type", "public", "rdns", "linode_id", "interface_id",
    "region", "vpc_nat_1_1", "reserved",
}  # fmt: skip


def pool_of(region_id: str):
    return Ipv4Address.objects.filter(pool__region_id=region_id).select_related("pool").first().pool


def test_a_linode_s_ipv4_is_the_pool_address_it_holds(world, alice):
    linode = created(alice)
    pool = pool_of("us-east")
    (address,) = linode["ipv4"]
    row = Ipv4Address.objects.get(address=address)
    assert row.holder_id == linode["id"] and row.pool == pool
    assert alice.get(f"/v4/linode/instances/{linode['id']}").json()["ipv4"] == [address]

    ips = alice.get(f"/v4/linode/instances/{linode['id']}/ips")
    assert ips.status_code == 200
    body = ips.json()
    (public,) = body["ipv4"]["public"]
    assert set(public) == IP_KEYS
    assert public == {
        "address": address,
        "gateway": pool.gateway,
        "subnet_mask": "255.255.255.0",
        "prefix": 24,
        "type": "ipv4",
        "public": True,
        "rdns": None,
        "linode_id": linode["id"],
        "interface_id": None,
        "region": "us-east",
        "vpc_nat_1_1": None,
        "reserved": False,
    }
    assert [body["ipv4"][k] for k in ("private", "shared", "reserved", "vpc")] == [[], [], [], []]
    assert body["ipv6"]["global"] == [] and body["ipv6"]["slaac"]["address"] is None
    assert body["ipv6"]["link_local"]["address"].startswith("fe80::5054:ff:fe")

    listed = alice.get("/v4/networking/ips").json()
    assert listed["results"] == 1 and listed["data"] == [public]
    one = alice.get(f"/v4/networking/ips/{address}")
    assert one.status_code == 200 and one.json() == public


def test_the_list_filters_and_pages_like_every_list(world, alice):
    first, second = created(alice), created(alice, region="ap-west")
    assert alice.get("/v4/networking/ips").json()["results"] == 2
    only = alice.get("/v4/networking/ips", filters={"region": "ap-west"}).json()["data"]
    assert [ip["linode_id"] for ip in only] == [second["id"]]
    only = alice.get("/v4/networking/ips", filters={"linode_id": first["id"]}).json()["data"]
    assert [ip["address"] for ip in only] == first["ipv4"]
    refused = alice.get("/v4/networking/ips", filters={"rdns": "x"})
    assert refused.status_code == 400 and "rdns" in reasons(refused)[0]


def test_another_account_s_address_is_not_found(world, alice, customer, client):
    linode = created(alice)
    bob = Api(client, token_for(customer))
    assert bob.get("/v4/networking/ips").json()["data"] == []
    for path in (f"/v4/networking/ips/{linode['ipv4'][0]}", f"/v4/linode/instances/{linode['id']}/ips"):
        response = bob.get(path)
        assert response.status_code == 404 and reasons(response) == ["Not found"]
    for nonsense in ("999.1.1.1", "not-an-address", "::1", "198.18.0.1"):
        response = alice.get(f"/v4/networking/ips/{nonsense}")
        assert response.status_code == 404, nonsense


def test_scopes_decide(world, employee, client):
    linode = created(Api(client, token_for(employee)))
    linodes_only = Api(client, token_for(employee, scopes="linodes:read_only"))
    assert linodes_only.get(f"/v4/linode/instances/{linode['id']}/ips").status_code == 200
    assert linodes_only.get("/v4/networking/ips").status_code == 403
    ips_only = Api(client, token_for(employee, scopes="ips:read_only"))
    assert ips_only.get("/v4/networking/ips").json()["results"] == 1


def test_a_deleted_linode_s_address_is_gone_from_the_api(world, alice):
    linode = created(alice)
    assert alice.delete(f"/v4/linode/instances/{linode['id']}").status_code == 200
    assert alice.get("/v4/networking/ips").json()["data"] == []
    assert alice.get(f"/v4/networking/ips/{linode['ipv4'][0]}").status_code == 404


def test_an_exhausted_pool_is_a_403_saying_so_and_nothing_is_made(world, alice):
    region = make_region("eu-tiny", "Tiny", "de", pool=False)
    make_pool(region=region, network="203.0.113.0/30")  # one host address besides the gateway
    make_gpu_host(region=region)
    created(alice, region="eu-tiny")
    response = alice.post("/v4/linode/instances", gpu_linode(region="eu-tiny", label="one-too-many"))
    assert response.status_code == 403
    (error,) = errors(response)
    assert error["field"] == "region" and "eu-tiny has no free public IPv4 address" in error["reason"]
    assert alice.get("/v4/linode/instances", filters={"label": "one-too-many"}).json()["results"] == 0
