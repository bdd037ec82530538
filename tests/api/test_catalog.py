"""Regions, plans and images: public, and GPU plans visible only where the gpu_instances flag is on."""

import pytest

from accounts.flags import GPU_INSTANCES
from gpuadmin.models import Flag
from tests.api.conftest import reasons

pytestmark = pytest.mark.django_db

TYPE_KEYS = {
    "id", "label", "class", "disk", "memory", "vcpus", "gpus", "network_out", "transfer", "price",
    "region_prices", "addons", "successor", "accelerated_devices",
}  # fmt: skip


def launch():
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["data"]]


def test_every_type_has_the_same_keys_in_linode_units(world, alice):
    response = alice.get("/v4/linode/types")
    types = {t["id"]: t for t in response.json()["data"]}
    assert set(types) == {"g6-standard-2", "g1-gpu-rtx6000-1", "g1-gpu-rtx6000-2"}
    assert all(set(t) == TYPE_KEYS for t in types.values())
    gpu = types["g1-gpu-rtx6000-1"]
    assert gpu["class"] == "gpu" and gpu["gpus"] == 1 and gpu["vcpus"] == 8
    assert gpu["memory"] == 32768 and gpu["disk"] == 655360 and gpu["transfer"] == 16000
    assert gpu["network_out"] == 10000
    assert gpu["price"] == {"hourly": 1.5, "monthly": 1000.0}
    assert gpu["addons"] == {"backups": {"price": {"hourly": 0.0, "monthly": 0.0}, "region_prices": []}}
    assert gpu["region_prices"] == [] and gpu["successor"] is None
    assert types["g6-standard-2"]["gpus"] == 0 and types["g6-standard-2"]["class"] == "standard"


def test_gpu_types_are_absent_for_an_account_without_the_flag(world, bob, anonymous):
    assert ids(bob.get("/v4/linode/types")) == ["g6-standard-2"]
    assert ids(anonymous.get("/v4/linode/types")) == ["g6-standard-2"]
    for api in (bob, anonymous):
        hidden, unknown = api.get("/v4/linode/types/g1-gpu-rtx6000-1"), api.get("/v4/linode/types/g9-nope")
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json() == unknown.json() == {"errors": [{"reason": "Not found"}]}


def test_a_type_by_id(world, alice):
    response = alice.get("/v4/linode/types/g1-gpu-rtx6000-2")
    assert response.status_code == 200
    assert response.json()["gpus"] == 2 and set(response.json()) == TYPE_KEYS


def test_launch_shows_gpu_types_to_everyone(world, bob, anonymous):
    launch()
    assert "g1-gpu-rtx6000-1" in ids(bob.get("/v4/linode/types"))
    assert "g1-gpu-rtx6000-1" in ids(anonymous.get("/v4/linode/types"))
    assert anonymous.get("/v4/linode/types/g1-gpu-rtx6000-1").status_code == 200


def test_kill_hides_gpu_types_even_from_employees(world, alice):
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=False)
    assert ids(alice.get("/v4/linode/types")) == ["g6-standard-2"]


def test_types_filter_by_class_as_the_sdk_sends_it(world, alice):
    assert ids(alice.get("/v4/linode/types", filters={"class": "gpu"})) == [
        "g1-gpu-rtx6000-1",
        "g1-gpu-rtx6000-2",
    ]
    assert ids(alice.get("/v4/linode/types", filters={"gpus": {"+gte": 2}})) == ["g1-gpu-rtx6000-2"]


def capabilities(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.content
    return {r["id"]: r["capabilities"] for r in response.json()["data"]}


def test_regions_offer_gpu_linodes_only_where_there_are_gpu_hosts_and_the_flag(world, alice, bob, anonymous):
    assert capabilities(alice.get("/v4/regions")) == {
        "ap-west": ["Linodes", "GPU Linodes"],
        "us-central": ["Linodes"],
        "us-east": ["Linodes", "GPU Linodes"],
    }
    for api in (bob, anonymous):
        assert all(c == ["Linodes"] for c in capabilities(api.get("/v4/regions")).values())
    launch()
    assert capabilities(bob.get("/v4/regions"))["us-east"] == ["Linodes", "GPU Linodes"]


def test_a_region_by_id(world, alice, bob):
    response = alice.get("/v4/regions/us-east")
    assert response.status_code == 200
    assert response.json() == {
        "id": "us-east",
        "label": "Newark, NJ",
        "country": "us",
        "capabilities": ["Linodes", "GPU Linodes"],
        "status": "ok",
        "resolvers": {"ipv4": "", "ipv6": ""},
        "site_type": "core",
    }
    assert bob.get("/v4/regions/us-east").json()["capabilities"] == ["Linodes"]
    assert bob.get("/v4/regions/mars-1").status_code == 404


def test_images_and_an_image_by_vendor_and_name(world, anonymous):
    response = anonymous.get("/v4/images")
    assert ids(response) == ["linode/ubuntu22.04"]
    image = anonymous.get("/v4/images/linode/ubuntu22.04")
    assert image.status_code == 200
    body = image.json()
    assert body["id"] == "linode/ubuntu22.04" and body["is_public"] is True and body["size"] == 2500
    assert body["status"] == "available" and body["type"] == "manual"
    assert anonymous.get("/v4/images/linode/nothing").status_code == 404
    assert reasons(anonymous.get("/v4/images/linode")) == ["Not found"]


def availability(response) -> dict[tuple[str, str], bool]:
    assert response.status_code == 200, response.content
    return {(row["region"], row["plan"]): row["available"] for row in response.json()["data"]}


def test_availability_says_whether_one_more_fits_per_region_and_gpu_plan(world, alice):
    rows = availability(alice.get("/v4/regions/availability"))
    assert rows[("us-east", "g1-gpu-rtx6000-1")] and rows[("us-east", "g1-gpu-rtx6000-2")]
    assert rows[("ap-west", "g1-gpu-rtx6000-1")] and not rows[("ap-west", "g1-gpu-rtx6000-2")]
    assert not rows[("us-central", "g1-gpu-rtx6000-1")]
    assert all(plan.startswith("g1-gpu-") for _, plan in rows)
    response = alice.post(
        "/v4/linode/instances",
        {
            "type": "g1-gpu-rtx6000-1",
            "region": "ap-west",
            "image": "linode/ubuntu22.04",
            "root_pass": "Corr3ct-H0rse!",
        },
    )
    assert response.status_code == 200
    one_region = availability(alice.get("/v4/regions/ap-west/availability"))
    assert one_region == {("ap-west", "g1-gpu-rtx6000-1"): False, ("ap-west", "g1-gpu-rtx6000-2"): False}


def test_availability_lists_no_gpu_plan_to_an_account_without_the_flag(world, bob):
    assert bob.get("/v4/regions/availability").json()["data"] == []
    assert bob.get("/v4/regions/us-east/availability").json()["data"] == []
    assert bob.get("/v4/regions/mars-1/availability").status_code == 404
