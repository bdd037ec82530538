"""/v4/linode/instances: the Linode object, create errors clients recognise, power actions, isolation."""

import re

import pytest
from waffle.models import Switch

from accounts.flags import GPU_INSTANCES, PROVISIONING_ENABLED
from gpuadmin.models import Flag
from provisioning.models import Instance, Job
from tests.api.conftest import errors

pytestmark = pytest.mark.django_db

LINODE_KEYS = {
    "id", "label", "group", "status", "created", "updated", "type", "region", "image", "ipv4", "ipv6",
    "specs", "alerts", "backups", "hypervisor", "watchdog_enabled", "tags", "host_uuid", "has_user_data",
}  # fmt: skip
PASSWORD = "Corr3ct-Horse-Battery"


def gpu_linode(**overrides) -> dict:
    return {
        "type": "g1-gpu-rtx6000-1",
        "region": "us-east",
        "image": "linode/ubuntu22.04",
        "root_pass": PASSWORD,
        **overrides,
    }


def created(api, **overrides) -> dict:
    """A Linode made through the API and left running, as if the worker had finished its create job.

    These tests are about the API: the task itself runs in the SDK tests against a live server.
    """
    response = api.post("/v4/linode/instances", gpu_linode(**overrides))
    assert response.status_code == 200, response.content
    settle(response.json()["id"])
    return response.json()


def settle(instance_id: int) -> None:
    Job.objects.filter(instance_id=instance_id, status__in=Job.IN_FLIGHT).update(
        status=Job.Status.FINISHED, percent_complete=100
    )
    Instance.objects.filter(pk=instance_id).update(status=Instance.Status.RUNNING)


def test_create_answers_the_full_linode_object_in_provisioning(world, alice):
    body = created(alice, label="train-1", tags=["ml-work"], group="research")
    assert set(body) == LINODE_KEYS
    assert body["status"] == "provisioning"
    assert (body["label"], body["type"], body["region"], body["image"]) == (
        "train-1", "g1-gpu-rtx6000-1", "us-east", "linode/ubuntu22.04",
    )  # fmt: skip
    assert body["specs"] == {"disk": 655360, "memory": 32768, "vcpus": 8, "gpus": 1, "transfer": 16000}
    assert body["tags"] == ["ml-work"] and body["group"] == "research" and body["hypervisor"] == "kvm"
    assert len(body["ipv4"]) == 1 and body["backups"]["enabled"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", body["created"])
    instance = Instance.objects.get(pk=body["id"])
    assert instance.account == alice_account(alice)
    assert Job.objects.filter(instance=instance, action=Job.Action.CREATE).exists()


def alice_account(api):
    from accounts.selectors import api_token_by_secret

    return api_token_by_secret(secret=api.token).user.membership.account


def test_a_label_is_generated_when_none_is_given(world, alice):
    assert created(alice)["label"].startswith("gpu-us-east-")


def test_a_standard_linode_without_an_image(world, bob):
    response = bob.post("/v4/linode/instances", {"type": "g6-standard-2", "region": "us-central"})
    assert response.status_code == 200, response.content
    assert response.json()["image"] is None and response.json()["specs"]["gpus"] == 0


NEED_PASS = "root_pass is required when deploying an image."
NOT_A_LIST = 'Expected a list of items but got type "str".'
UNKNOWN_TYPE = [{"reason": "A valid plan type by that ID was not found", "field": "type"}]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (gpu_linode(type="g1-gpu-nope-9"), UNKNOWN_TYPE),
        (gpu_linode(region="mars-1"), [{"reason": "region is not valid", "field": "region"}]),
        (gpu_linode(root_pass=None), [{"reason": NEED_PASS, "field": "root_pass"}]),
        ({"region": "us-east"}, [{"reason": "This field is required.", "field": "type"}]),
        (gpu_linode(tags="ml"), [{"reason": NOT_A_LIST, "field": "tags"}]),
        (gpu_linode(label="a"), None),
        (gpu_linode(image="linode/nothing"), None),
        (gpu_linode(root_pass="short"), None),
    ],
)  # fmt: skip
def test_create_refuses_bad_requests_with_400_and_creates_nothing(world, alice, body, expected):
    response = alice.post("/v4/linode/instances", body)
    assert response.status_code == 400, response.content
    if expected is not None:
        assert errors(response) == expected
    else:
        assert errors(response)[0]["field"] in {"label", "image", "root_pass"}
    assert not Instance.objects.exists() and not Job.objects.exists()


def test_a_hidden_gpu_type_gets_exactly_the_unknown_type_400(world, bob):
    hidden = bob.post("/v4/linode/instances", gpu_linode())
    unknown = bob.post("/v4/linode/instances", gpu_linode(type="g1-gpu-nope-9"))
    assert hidden.status_code == unknown.status_code == 400
    assert hidden.json() == unknown.json() == {"errors": UNKNOWN_TYPE}
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=True)
    assert bob.post("/v4/linode/instances", gpu_linode()).status_code == 200


def test_a_duplicate_label_is_refused(world, alice):
    created(alice, label="twin")
    response = alice.post("/v4/linode/instances", gpu_linode(label="twin"))
    assert response.status_code == 400
    assert errors(response) == [{"reason": "Label must be unique among your linodes", "field": "label"}]


def test_no_capacity_is_a_403_with_linodes_sentence_then_the_reason(world, alice):
    created(alice, region="ap-west")  # ap-west has one GPU
    response = alice.post("/v4/linode/instances", gpu_linode(region="ap-west"))
    assert response.status_code == 403
    (error,) = errors(response)
    sentence = "The Linode plan you chose is not currently available in the selected region."
    assert error["reason"].startswith(sentence + " ") and len(error["reason"]) > len(sentence) + 10
    assert Instance.objects.count() == 1


def test_the_kill_switch_answers_503_and_creates_nothing(world, alice):
    Switch.objects.filter(name=PROVISIONING_ENABLED).update(active=False)
    response = alice.post("/v4/linode/instances", gpu_linode())
    assert response.status_code == 503
    assert errors(response)[0]["reason"] and response["Retry-After"] == "60"
    assert not Instance.objects.exists()


def test_list_shows_only_the_callers_linodes_and_filters(world, alice, bob):
    mine = [created(alice, label=f"gpu-{n}", tags=["ml-work"] if n else []) for n in range(2)]
    bob.post("/v4/linode/instances", {"type": "g6-standard-2", "region": "us-central", "label": "bobs"})
    body = alice.get("/v4/linode/instances").json()
    assert [i["id"] for i in body["data"]] == [i["id"] for i in mine] and body["results"] == 2
    assert [
        i["label"] for i in alice.get("/v4/linode/instances", filters={"tags": "ml-work"}).json()["data"]
    ] == ["gpu-1"]
    by_label = alice.get("/v4/linode/instances", filters={"label": {"+contains": "gpu-"}, "+order_by": "id",
                                                          "+order": "desc"})  # fmt: skip
    assert [i["label"] for i in by_label.json()["data"]] == ["gpu-1", "gpu-0"]
    assert (
        alice.get("/v4/linode/instances", filters={"region": "us-east", "type": "g6-standard-2"}).json()[
            "results"
        ]
        == 0
    )


def test_view_update_and_isolation(world, alice, bob):
    linode = created(alice, label="mine")
    path = f"/v4/linode/instances/{linode['id']}"
    view = alice.get(path)
    assert view.status_code == 200 and set(view.json()) == LINODE_KEYS
    updated = alice.put(path, {"label": "renamed", "tags": ["a-tag"], "group": "g", "alerts": {"cpu": 1}})
    assert updated.status_code == 200 and set(updated.json()) == LINODE_KEYS
    assert (updated.json()["label"], updated.json()["tags"], updated.json()["group"]) == (
        "renamed",
        ["a-tag"],
        "g",
    )
    not_mine, nothing = bob.get(path), bob.get("/v4/linode/instances/999999")
    assert not_mine.status_code == nothing.status_code == 404
    assert not_mine.json() == nothing.json()
    assert bob.put(path, {"label": "stolen"}).status_code == 404
    assert Instance.objects.get(pk=linode["id"]).label == "renamed"


def test_update_to_a_taken_label_is_refused(world, alice):
    created(alice, label="first")
    second = created(alice, label="second")
    response = alice.put(f"/v4/linode/instances/{second['id']}", {"label": "first"})
    assert response.status_code == 400 and errors(response)[0]["field"] == "label"


@pytest.mark.parametrize(("action", "job"), [("shutdown", "linode_shutdown"), ("reboot", "linode_reboot")])
def test_power_actions_answer_empty_objects_and_queue_a_job(world, alice, action, job):
    linode = created(alice)
    response = alice.post(f"/v4/linode/instances/{linode['id']}/{action}")
    assert response.status_code == 200 and response.json() == {}
    assert Job.objects.filter(instance_id=linode["id"], action=job).exists()


def test_boot_after_shutdown(world, alice):
    linode = created(alice)
    assert alice.post(f"/v4/linode/instances/{linode['id']}/shutdown").status_code == 200
    settle(linode["id"])
    response = alice.post(f"/v4/linode/instances/{linode['id']}/boot", {"config_id": None})
    assert response.status_code == 200 and response.json() == {}
    assert Job.objects.filter(instance_id=linode["id"], action="linode_boot").exists()


def test_a_busy_linode_answers_linode_busy(world, alice):
    linode = created(alice)
    instance = Instance.objects.get(pk=linode["id"])
    Job.objects.filter(instance=instance).update(status=Job.Status.FINISHED)
    Job.objects.create(instance=instance, account=instance.account, action=Job.Action.REBOOT)
    for action in ("boot", "shutdown", "reboot"):
        response = alice.post(f"/v4/linode/instances/{linode['id']}/{action}")
        assert response.status_code == 400
        assert errors(response) == [{"reason": "Linode busy."}]


def test_resize(world, alice):
    linode = created(alice)
    response = alice.post(f"/v4/linode/instances/{linode['id']}/resize", {"type": "g1-gpu-rtx6000-2"})
    assert response.status_code == 200 and response.json() == {}
    assert Job.objects.filter(instance_id=linode["id"], action="linode_resize").exists()


def test_resize_to_a_hidden_or_unknown_type(world, alice, bob):
    Flag.objects.filter(name=GPU_INSTANCES).update(everyone=None)
    linode = bob.post("/v4/linode/instances", {"type": "g6-standard-2", "region": "us-central"}).json()
    settle(linode["id"])
    for plan in ("g1-gpu-rtx6000-1", "g9-nothing"):
        response = bob.post(f"/v4/linode/instances/{linode['id']}/resize", {"type": plan})
        assert response.status_code == 400 and errors(response) == UNKNOWN_TYPE


def test_delete_answers_empty_and_the_linode_is_gone(world, alice):
    linode = created(alice)
    path = f"/v4/linode/instances/{linode['id']}"
    response = alice.delete(path)
    assert response.status_code == 200 and response.json() == {}
    assert Job.objects.filter(instance_id=linode["id"], action="linode_delete").exists()
    # Gone for the account at once, as on Linode (the delete job tears down behind it).
    assert alice.get(path).status_code == 404
    assert linode["id"] not in [i["id"] for i in alice.get("/v4/linode/instances").json()["data"]]
    again = alice.delete(path)
    assert again.status_code == 404 and "errors" in again.json()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("{not json", "JSON parse error"), ("[1, 2]", "Invalid data. Expected a dictionary, but got list.")],
)
def test_a_body_that_is_not_a_json_object_is_a_400(world, alice, client, raw, reason):
    response = client.post(
        "/v4/linode/instances",
        raw,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {alice.token}",
    )
    assert response.status_code == 400
    assert errors(response)[0]["reason"].startswith(reason)
    assert not Instance.objects.exists()


def test_a_body_in_another_media_type_is_a_415(world, alice, client):
    response = client.post(
        "/v4/linode/instances", "type=g6-standard-2", content_type="text/plain",
        HTTP_AUTHORIZATION=f"Bearer {alice.token}",
    )  # fmt: skip
    assert response.status_code == 415
    assert errors(response)[0]["reason"].startswith("Unsupported media type")


def test_the_linode_object_is_what_its_declared_fields_give(world, alice, bob):
    # The serializer builds the object in one go for speed; DRF's walk over the declared fields (what
    # the schema publishes) must give the very same object, key order included.
    from rest_framework import serializers

    from provisioning.api.selectors import linode_rows
    from provisioning.api.serializers import InstanceSerializer, linode_object

    # The fast path is the instance serializer's own: an edit once left it on the class below it, and
    # every list walked the fields again while this test compared the walk with itself.
    assert "to_representation" in vars(InstanceSerializer)
    created(alice, label="walked", tags=["ml-work", "b-tag"])
    bob.post("/v4/linode/instances", {"type": "g6-standard-2", "region": "us-central", "label": "no-image"})
    instances = list(Instance.objects.select_related("instance_type"))
    assert {i.image_id is None for i in instances} == {True, False}
    assert any(i.host_id for i in instances) and any(i.tags for i in instances)
    Instance.objects.filter(pk=instances[0].pk).update(ipv6="2600:3c03::f03c:91ff:fe24:3a2f/128")
    Instance.objects.filter(pk=instances[1].pk).update(user_data="I2Nsb3VkLWNvbmZpZwo=")
    rows = {row["id"]: row for row in linode_rows(Instance.objects.all())}
    for instance in Instance.objects.select_related("instance_type"):
        fast = InstanceSerializer(instance).data
        walked = serializers.Serializer.to_representation(InstanceSerializer(instance), instance)
        assert list(fast.items()) == list(walked.items())
        # A list builds the object from rows rather than models: the very same object.
        assert list(linode_object(rows[instance.pk]).items()) == list(walked.items())
    assert {row["user_data_length"] > 0 for row in rows.values()} == {True, False}


def test_a_list_page_is_the_objects_each_view_gives(world, alice):
    for n in range(3):
        created(alice, label=f"listed-{n}", tags=[f"tag-{n}"])
    listed = alice.get("/v4/linode/instances?page_size=25").json()["data"]
    assert len(listed) == 3
    for obj in listed:
        assert alice.get(f"/v4/linode/instances/{obj['id']}").json() == obj
