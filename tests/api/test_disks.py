"""/v4/linode/instances/{id}/disks and /configs: the boot disk, the NoCloud seed and the profile the
domain has, read-only."""

import pytest

from provisioning.models import Instance, Job
from tests.api.conftest import errors, reasons
from tests.api.test_instances import created

pytestmark = pytest.mark.django_db

DISK_KEYS = {"id", "label", "size", "status", "filesystem", "disk_encryption", "created", "updated"}
CONFIG_KEYS = {
    "id", "label", "comments", "kernel", "initrd", "root_device", "run_level", "virt_mode", "memory_limit",
    "helpers", "devices", "interfaces", "created", "updated",
}  # fmt: skip


def test_a_linode_has_one_boot_disk_the_size_of_its_plan_from_its_image_and_its_seed(world, alice):
    linode = created(alice)
    response = alice.get(f"/v4/linode/instances/{linode['id']}/disks")
    assert response.status_code == 200
    body = response.json()
    assert (body["page"], body["pages"], body["results"]) == (1, 1, 2)
    disk, seed = body["data"]
    assert set(disk) == DISK_KEYS and set(seed) == DISK_KEYS
    # The seed the domain has as its cdrom: a 1 MiB ISO, read-only, id right after the boot disk's.
    assert (seed["id"], seed["label"], seed["size"], seed["filesystem"], seed["status"]) == (
        disk["id"] + 1,
        "NoCloud seed (cidata)",
        1,
        "raw",
        "ready",
    )
    assert (disk["label"], disk["size"], disk["status"], disk["filesystem"]) == (
        f"{world.image.label} Disk",
        linode["specs"]["disk"],
        "ready",
        "ext4",
    )
    assert disk["disk_encryption"] == "disabled"
    one = alice.get(f"/v4/linode/instances/{linode['id']}/disks/{disk['id']}")
    assert one.status_code == 200 and one.json() == disk


def test_the_profile_boots_the_disk_directly_and_maps_it_first_then_the_seed(world, alice):
    linode = created(alice)
    disk, seed = alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"]
    (config,) = alice.get(f"/v4/linode/instances/{linode['id']}/configs").json()["data"]
    assert set(config) == CONFIG_KEYS
    assert config["kernel"] == "linode/direct-disk" and config["root_device"] == "/dev/vda"
    assert config["devices"]["sda"] == {"disk_id": disk["id"], "volume_id": None}
    assert config["devices"]["sdb"] == {"disk_id": seed["id"], "volume_id": None}
    assert [config["devices"][slot] for slot in ("sdc", "sdd", "sde", "sdf", "sdg", "sdh")] == [None] * 6
    assert (config["virt_mode"], config["run_level"], config["memory_limit"]) == ("paravirt", "default", 0)
    assert not any(config["helpers"].values()) and config["interfaces"] == []
    one = alice.get(f"/v4/linode/instances/{linode['id']}/configs/{config['id']}")
    assert one.status_code == 200 and one.json() == config


def test_ids_are_stable_and_never_shared_and_follow_the_disk_through_a_resize(world, alice):
    first, second = created(alice, label="first"), created(alice, label="second")

    def ids(linode):
        disks = alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"]
        configs = alice.get(f"/v4/linode/instances/{linode['id']}/configs").json()["data"]
        return [d["id"] for d in disks], [c["id"] for c in configs], [d["size"] for d in disks]

    before = ids(first)
    assert ids(first) == before
    assert not set(before[0]) & set(ids(second)[0]) and before[1] != ids(second)[1]
    # A resize that finished grew the disk; the ids stay.
    Instance.objects.filter(pk=first["id"]).update(instance_type=world.gpu_plan_2, disk_mib=0)
    after = ids(first)
    assert after[:2] == before[:2] and after[2] == [world.gpu_plan_2.disk_mib, 1]


def test_the_disk_is_not_ready_while_provisioning_and_gone_when_the_create_failed(world, alice):
    linode = alice.post(
        "/v4/linode/instances",
        {
            "type": "g1-gpu-rtx6000-1",
            "region": "us-east",
            "image": "linode/ubuntu22.04",
            "root_pass": "Corr3ct-Horse-Battery",
        },
    ).json()
    Instance.objects.filter(pk=linode["id"]).update(status=Instance.Status.PROVISIONING)
    disk, seed = alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"]
    assert disk["status"] == seed["status"] == "not ready"
    Instance.objects.filter(pk=linode["id"]).update(status=Instance.Status.REBUILDING)
    assert alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"][0]["status"] == "not ready"
    Instance.objects.filter(pk=linode["id"]).update(status=Instance.Status.FAILED)
    Job.objects.filter(instance_id=linode["id"]).update(status=Job.Status.FAILED)
    assert alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"] == []
    assert alice.get(f"/v4/linode/instances/{linode['id']}/configs").json()["data"] == []
    assert alice.get(f"/v4/linode/instances/{linode['id']}/disks/{disk['id']}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "what"),
    [
        ("post", "disks", "added"),
        ("put", "disks/{disk}", "renamed or changed"),
        ("delete", "disks/{disk}", "deleted"),
        ("post", "disks/{disk}/resize", "resized on their own"),
        ("post", "disks/{disk}/clone", "cloned"),
        ("post", "configs", "added"),
        ("put", "configs/{config}", "changed"),
        ("delete", "configs/{config}", "deleted"),
    ],
)
def test_writes_linode_allows_are_a_400_that_says_what_to_do_instead(world, alice, method, path, what):
    linode = created(alice)
    disks = alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"]
    disk = disks[0]
    url = f"/v4/linode/instances/{linode['id']}/" + path.format(disk=disk["id"], config=linode["id"])
    call = getattr(alice, method)
    response = call(url, {"label": "x", "size": 1}) if method in ("post", "put") else call(url)
    assert response.status_code == 400, response.content
    (reason,) = reasons(response)
    assert f"cannot be {what}" in reason
    assert alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"] == disks


def test_another_accounts_disks_and_unknown_ids_are_404(world, alice, bob):
    linode = created(alice)
    disk, seed = alice.get(f"/v4/linode/instances/{linode['id']}/disks").json()["data"]
    for path in ("disks", f"disks/{disk['id']}", "configs", f"configs/{linode['id']}"):
        assert bob.get(f"/v4/linode/instances/{linode['id']}/{path}").status_code == 404
    assert (
        bob.post(f"/v4/linode/instances/{linode['id']}/disks/{disk['id']}/resize", {"size": 1}).status_code
        == 404
    )
    for path in (f"disks/{seed['id'] + 1}", f"configs/{linode['id'] + 1}", "disks/0"):
        assert alice.get(f"/v4/linode/instances/{linode['id']}/{path}").status_code == 404


def test_a_filter_on_disks_is_refused_rather_than_ignored(world, alice):
    linode = created(alice)
    response = alice.get(f"/v4/linode/instances/{linode['id']}/disks", filters={"label": "x"})
    assert response.status_code == 400
    assert errors(response)[0]["field"] == "X-Filter"
