"""Request bodies take JSON's types as Linode's API does: a number where a string is expected, 1 or "true"
where a boolean is, "7" where an integer is, is a 400 naming the field, and nothing is written.

Before, DRF's fields coerced them: `label: 1.5` made the label "1.5", `tags: [1.5e300]` a tag
"1.5e+300", `booted: 1` true. The walk below covers every request body the OpenAPI document describes,
so an endpoint added later is held to the same rule without a new test.
"""

import json

import pytest

from provisioning.models import Instance, Job
from tests.api.conftest import errors

pytestmark = pytest.mark.django_db

# What each JSON type must refuse: values of every other JSON type that DRF would have coerced.
WRONG = {
    "string": [1.5, 7, True],
    "boolean": [1, 0, "true", "yes"],
    "integer": ["7", True, 1.5],
}


@pytest.fixture
def linode(world, alice):
    body = {"type": world.gpu_plan.id, "region": "us-east", "image": "linode/ubuntu22.04"}
    response = alice.post("/v4/linode/instances", {**body, "root_pass": "Corr3ct-Horse-9", "label": "web-1"})
    assert response.status_code == 200, response.content
    return response.json()["id"]


def request_bodies(schema: dict):
    """(method, path, property, JSON type, is a list item) for every property of every request body."""
    components = schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if not content:
                continue
            body = components[content["schema"]["$ref"].rsplit("/", 1)[1]]
            for name, prop in body.get("properties", {}).items():
                if prop.get("readOnly"):
                    continue
                if "type" not in prop:  # a nested object (metadata): test_seed checks its user_data
                    continue
                if prop.get("type") == "array":
                    yield method, path, name, prop["items"]["type"], True
                else:
                    yield method, path, name, prop["type"], False


def test_every_request_body_refuses_values_of_the_wrong_json_type(world, alice, anonymous, linode, settings):
    settings.GPUADMIN_API_RATE_LIMITS = {"requests": (10**6, 120), "linode_create": (10**6, 30)}
    schema = anonymous.get("/v4/openapi.json").json()
    disk = alice.get(f"/v4/linode/instances/{linode}/disks").json()["data"][0]["id"]
    checked = []
    instance_before = alice.get(f"/v4/linode/instances/{linode}").json()
    jobs = Job.objects.count()
    for method, path, name, kind, in_list in request_bodies(schema):
        url = path.replace("{instance_id}", str(linode)).replace("{disk_id}", str(disk))
        for wrong in WRONG[kind]:
            body = {name: [wrong] if in_list else wrong}
            response = getattr(alice, method)(url, body)
            assert response.status_code == 400, (method, path, body, response.content)
            field = f"{name}.0" if in_list else name
            mine = [e for e in errors(response) if e.get("field") in (name, field)]
            assert mine, (method, path, body, errors(response))
            assert "Must be" in mine[0]["reason"], mine
            checked.append((method, path, name))
    # The walk saw the bodies the issue names, and every other one.
    assert ("post", "/v4/linode/instances", "label") in checked
    assert ("post", "/v4/linode/instances", "tags") in checked
    assert ("post", "/v4/linode/instances", "booted") in checked
    assert ("post", "/v4/linode/instances/{instance_id}/rebuild", "booted") in checked
    assert {path for _, path, _ in checked} >= {
        "/v4/linode/instances/{instance_id}",
        "/v4/linode/instances/{instance_id}/resize",
        "/v4/linode/instances/{instance_id}/password",
        "/v4/linode/instances/{instance_id}/disks/{disk_id}/password",
    }
    assert Instance.objects.count() == 1 and Job.objects.count() == jobs  # nothing written
    assert alice.get(f"/v4/linode/instances/{linode}").json() == instance_before


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ({"label": 1.5}, "label", "Must be a string, not a number."),
        ({"tags": [1.5e300]}, "tags.0", "Must be a string, not a number."),
        ({"tags": ["ok-tag", False]}, "tags.1", "Must be a string, not a boolean."),
        ({"booted": 1}, "booted", "Must be true or false, not a number."),
        ({"booted": "false"}, "booted", "Must be true or false, not a string."),
        ({"root_pass": {"a": 1}}, "root_pass", "Must be a string, not an object."),
        ({"authorized_keys": [["ssh-ed25519 AAAA"]]}, "authorized_keys.0", "Must be a string, not a list."),
    ],
)
def test_the_issues_coercions_are_400s_naming_the_field(world, alice, extra, field, reason):
    body = {"type": world.gpu_plan.id, "region": "us-east", "image": "linode/ubuntu22.04"}
    response = alice.post("/v4/linode/instances", {**body, "root_pass": "Corr3ct-Horse-9", **extra})
    assert response.status_code == 400, response.content
    assert errors(response) == [{"reason": reason, "field": field}]
    assert not Instance.objects.exists()


def test_values_of_the_right_type_still_work(world, alice, linode):
    response = alice.put(f"/v4/linode/instances/{linode}", {"label": "web-2", "tags": ["gpu-1"]})
    assert response.status_code == 200, response.content
    assert (response.json()["label"], response.json()["tags"]) == ("web-2", ["gpu-1"])
    body = {"type": world.gpu_plan.id, "region": "us-east", "image": "linode/ubuntu22.04"}
    created = alice.post("/v4/linode/instances", {**body, "root_pass": "Corr3ct-Horse-9", "booted": False})
    assert created.status_code == 200, created.content
    assert Instance.objects.get(pk=created.json()["id"]).booted is False


def test_a_null_where_null_is_allowed_is_not_a_type_error(world, alice):
    body = {"type": world.gpu_plan.id, "region": "us-east", "image": "linode/ubuntu22.04", "label": None}
    response = alice.post("/v4/linode/instances", {**body, "root_pass": "Corr3ct-Horse-9"})
    assert response.status_code == 200, response.content
    assert json.loads(response.content)["label"]
