"""The official linode-cli against a live gpuadmin, pointed at it with its own environment overrides.

linode-cli reads responses through the Linode OpenAPI spec it ships with: this catches a key or a
shape it expects that gpuadmin's own schema would not.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import token_for
from tests.builders import make_image

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

CLI = shutil.which("linode-cli") or str(Path(sys.executable).with_name("linode-cli"))


@pytest.fixture
def cli(live_server, employee, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINODE_")},
        "HOME": str(tmp_path),  # no config file: the token comes from the environment
        "LINODE_CLI_TOKEN": token_for(employee),
        "LINODE_CLI_API_HOST": urlsplit(live_server.url).netloc,
        "LINODE_CLI_API_SCHEME": "http",
    }

    def run(*args: str):
        completed = subprocess.run(
            [CLI, "--suppress-warnings", *args, "--json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert completed.returncode == 0, completed.stderr + completed.stdout
        return json.loads(completed.stdout) if completed.stdout.strip() else None  # actions print nothing

    return run


def test_linode_cli_lists_creates_powers_and_deletes(world, cli):
    assert {r["id"] for r in cli("regions", "list")} == {"us-east", "ap-west", "us-central"}
    assert "g1-gpu-rtx6000-1" in [t["id"] for t in cli("linodes", "types")]
    (made,) = cli(
        "linodes", "create", "--type", "g1-gpu-rtx6000-1", "--region", "us-east",
        "--image", "linode/ubuntu22.04", "--root_pass", "Corr3ct-Horse-9", "--label", "cli-gpu",
    )  # fmt: skip
    assert made["status"] == "provisioning"
    (listed,) = cli("linodes", "list", "--region", "us-east")
    assert (listed["id"], listed["label"], listed["status"]) == (made["id"], "cli-gpu", "running")
    assert cli("linodes", "list", "--region", "ap-west") == []
    events = cli("events", "list")
    assert [(e["action"], e["status"]) for e in events] == [("linode_create", "finished")]
    cli("linodes", "shutdown", str(made["id"]))
    assert cli("linodes", "view", str(made["id"]))[0]["status"] == "offline"
    assert cli("linodes", "update", str(made["id"]), "--label", "cli-renamed")[0]["label"] == "cli-renamed"
    cli("linodes", "delete", str(made["id"]))
    assert cli("linodes", "list") == []
    assert cli("profile", "view")[0]["username"] == "alice"


def test_linode_cli_lists_and_views_disks_and_configs(world, cli):
    (made,) = cli(
        "linodes", "create", "--type", "g1-gpu-rtx6000-1", "--region", "us-east",
        "--image", "linode/ubuntu22.04", "--root_pass", "Corr3ct-Horse-9", "--label", "cli-disks",
    )  # fmt: skip
    linode_id = str(made["id"])
    disk, seed = cli("linodes", "disks-list", linode_id)
    assert (disk["size"], disk["filesystem"], disk["status"]) == (made["specs"]["disk"], "ext4", "ready")
    assert seed["label"] == "NoCloud seed (cidata)"
    assert cli("linodes", "disk-view", linode_id, str(disk["id"])) == [disk]
    (config,) = cli("linodes", "configs-list", linode_id)
    assert config["kernel"] == "linode/direct-disk" and config["devices"]["sda"]["disk_id"] == disk["id"]
    assert config["devices"]["sdb"]["disk_id"] == seed["id"]
    assert cli("linodes", "config-view", linode_id, str(config["id"]))[0]["id"] == config["id"]


def test_linode_cli_rebuilds_onto_another_image_keeping_the_linode(world, cli):
    make_image("linode/debian12")
    (made,) = cli(
        "linodes", "create", "--type", "g1-gpu-rtx6000-1", "--region", "us-east",
        "--image", "linode/ubuntu22.04", "--root_pass", "Corr3ct-Horse-9", "--label", "cli-rebuild",
    )  # fmt: skip
    (rebuilt,) = cli(
        "linodes", "rebuild", str(made["id"]), "--image", "linode/debian12", "--root_pass", "Rebu1lt-Horse-9"
    )
    assert (rebuilt["id"], rebuilt["image"], rebuilt["ipv4"]) == (made["id"], "linode/debian12", made["ipv4"])
    (viewed,) = cli("linodes", "view", str(made["id"]))
    assert (viewed["status"], viewed["image"]) == ("running", "linode/debian12")
    events = [(e["action"], e["status"]) for e in cli("events", "list")]
    assert ("linode_rebuild", "finished") in events


def test_linode_cli_lists_a_linode_s_addresses_and_views_one(world, cli):
    (made,) = cli(
        "linodes", "create", "--type", "g1-gpu-rtx6000-1", "--region", "us-east",
        "--image", "linode/ubuntu22.04", "--root_pass", "Corr3ct-Horse-9", "--label", "cli-ips",
    )  # fmt: skip
    (address,) = made["ipv4"]
    (ips,) = cli("linodes", "ips-list", str(made["id"]))
    (public,) = ips["ipv4"]["public"]
    assert (public["address"], public["linode_id"], public["prefix"], public["type"]) == (
        address, made["id"], 24, "ipv4",
    )  # fmt: skip
    assert public["gateway"].rsplit(".", 1)[0] == address.rsplit(".", 1)[0]
    listed = cli("networking", "ips-list")
    assert [ip["address"] for ip in listed] == [address]
    assert cli("networking", "ip-view", address)[0]["linode_id"] == made["id"]
