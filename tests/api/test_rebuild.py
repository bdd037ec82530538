"""POST /v4/linode/instances/{id}/rebuild and /password: what clients send, what they are told."""

import pytest

from provisioning.models import Instance, Job
from tests.api.conftest import errors
from tests.api.test_instances import LINODE_KEYS, created, settle
from tests.builders import make_image

pytestmark = pytest.mark.django_db

NEW_PASS = "Rebuilt-Horse-Battery-9"


def test_a_rebuild_answers_the_linode_rebuilding_on_its_new_image(world, alice):
    make_image("linode/debian12")
    linode = created(alice)
    response = alice.post(
        f"/v4/linode/instances/{linode['id']}/rebuild",
        {"image": "linode/debian12", "root_pass": NEW_PASS, "stackscript_id": None},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == LINODE_KEYS
    assert (body["id"], body["image"], body["status"]) == (linode["id"], "linode/debian12", "rebuilding")
    assert body["ipv4"] == linode["ipv4"] and body["specs"] == linode["specs"]
    assert Job.objects.filter(instance_id=linode["id"], action="linode_rebuild").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "linode/no-such", "root_pass": NEW_PASS}, "image"),
        ({"root_pass": NEW_PASS}, "image"),
        ({"image": "linode/ubuntu22.04"}, "root_pass"),
        ({"image": "linode/ubuntu22.04", "root_pass": "weak"}, "root_pass"),
    ],
)
def test_a_bad_rebuild_is_a_400_naming_the_field_and_changes_nothing(world, alice, body, field):
    linode = created(alice)
    response = alice.post(f"/v4/linode/instances/{linode['id']}/rebuild", body)
    assert response.status_code == 400
    assert errors(response)[0]["field"] == field
    instance = Instance.objects.get(pk=linode["id"])
    assert (instance.image_id, instance.status) == ("linode/ubuntu22.04", Instance.Status.RUNNING)
    assert not Job.objects.filter(instance=instance, action="linode_rebuild").exists()


def test_a_password_reset_on_a_running_linode_is_a_400_and_on_an_offline_one_a_job(world, alice):
    linode = created(alice)
    url = f"/v4/linode/instances/{linode['id']}/password"
    refused = alice.post(url, {"root_pass": NEW_PASS})
    assert refused.status_code == 400 and "shut down" in errors(refused)[0]["reason"]
    assert alice.post(url, {}).status_code == 400
    Instance.objects.filter(pk=linode["id"]).update(status=Instance.Status.OFFLINE, booted=False)
    accepted = alice.post(url, {"root_pass": NEW_PASS})
    assert (accepted.status_code, accepted.json()) == (200, {})
    assert Job.objects.filter(instance_id=linode["id"], action="password_reset").exists()
    settle(linode["id"])
    Instance.objects.filter(pk=linode["id"]).update(status=Instance.Status.OFFLINE)
    disk, seed = alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"]
    by_disk = alice.post(
        f"/v4/linode/instances/{linode['id']}/disks/{disk['id']}/password", {"password": NEW_PASS}
    )
    assert (by_disk.status_code, by_disk.json()) == (200, {})
    assert Job.objects.filter(instance_id=linode["id"], action="password_reset").count() == 2
    # The seed is no system to reset a password on: a 400 that names the disk to use, and no job.
    settle(linode["id"])
    Instance.objects.filter(pk=linode["id"]).update(status=Instance.Status.OFFLINE)
    on_seed = alice.post(
        f"/v4/linode/instances/{linode['id']}/disks/{seed['id']}/password", {"password": NEW_PASS}
    )
    assert on_seed.status_code == 400 and "boot disk" in errors(on_seed)[0]["reason"]
    assert Job.objects.filter(instance_id=linode["id"], action="password_reset").count() == 2
