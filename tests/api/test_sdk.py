"""The official linode_api4 SDK against a live gpuadmin: what a customer's script does, unchanged.

Tasks run inline on commit (tests use django-q2's sync mode), so an event is finished by the time
the request that queued it has answered; the SDK's poller still does its own polling.
"""

from io import StringIO

import pytest
from django.core.management import call_command
from linode_api4 import ApiError, IPAddress, LinodeClient

from accounts.flags import GPU_INSTANCES
from tests.api.conftest import token_for
from tests.builders import make_image

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ROOT_PASS = "Corr3ct-Horse-Battery"
GPU_PLAN = "g1-gpu-rtx6000-1"


@pytest.fixture
def sdk(live_server):
    clients = []

    def client_for(user, scopes: str = "*") -> LinodeClient:
        clients.append(LinodeClient(token_for(user, scopes), base_url=live_server.url + "/v4"))
        return clients[-1]

    yield client_for
    # A kept-alive connection closed after the live server's test ends would close the test
    # database's connection from the wrong thread: hang up while the server is still ours.
    for client in clients:
        client.session.close()


def finished(client: LinodeClient, action: str, entity_id: int | None = None):
    return client.polling.event_poller_create("linode", action, entity_id=entity_id)


def wait(poller) -> object:
    event = poller.wait_for_next_event_finished(timeout=60, interval=1)
    assert event.status == "finished", event.message
    return event


def test_an_employee_runs_a_gpu_linode_through_its_life(world, employee, sdk):
    client = sdk(employee)
    regions = {r.id: r for r in client.regions()}
    assert set(regions) == {"us-east", "ap-west", "us-central"}
    assert "GPU Linodes" in regions["us-east"].capabilities
    gpu_types = [t.id for t in client.linode.types() if t.type_class == "gpu"]
    assert GPU_PLAN in gpu_types

    poller = finished(client, "linode_create")
    linode = client.linode.instance_create(
        GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS
    )
    poller.set_entity_id(linode.id)
    event = wait(poller)
    assert event.entity.id == linode.id and event.action == "linode_create"

    linode.invalidate()
    assert linode.status == "running"
    assert (linode.specs.gpus, linode.specs.vcpus, linode.specs.memory) == (1, 8, 32768)
    assert linode.type.id == GPU_PLAN and linode.region.id == "us-east" and linode.hypervisor == "kvm"
    assert linode.ipv4

    poller = finished(client, "linode_shutdown", linode.id)
    assert linode.shutdown()
    wait(poller)
    linode.invalidate()
    assert linode.status == "offline"

    poller = finished(client, "linode_boot", linode.id)
    assert linode.boot()
    wait(poller)
    linode.invalidate()
    assert linode.status == "running"

    linode.label = "renamed-by-sdk"
    linode.tags = ["sdk-made"]
    assert linode.save()
    assert [i.label for i in client.linode.instances()] == ["renamed-by-sdk"]

    poller = finished(client, "linode_delete", linode.id)
    assert linode.delete()
    wait(poller)
    assert list(client.linode.instances()) == []


def test_a_customer_cannot_see_or_buy_gpus_until_launch(world, customer, sdk):
    client = sdk(customer)
    assert [t.id for t in client.linode.types()] == ["g6-standard-2"]
    assert all("GPU Linodes" not in r.capabilities for r in client.regions())
    with pytest.raises(ApiError) as refused:
        client.linode.instance_create(GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS)
    assert refused.value.status == 400
    assert refused.value.errors == ["A valid plan type by that ID was not found"]

    call_command("waffle_flag", GPU_INSTANCES, "--everyone", stdout=StringIO())

    assert GPU_PLAN in [t.id for t in client.linode.types()]
    poller = finished(client, "linode_create")
    linode = client.linode.instance_create(
        GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS
    )
    poller.set_entity_id(linode.id)
    wait(poller)
    linode.invalidate()
    assert linode.status == "running" and linode.specs.gpus == 1


def test_sdk_errors_and_paging(world, customer, sdk):
    client = sdk(customer, "linodes:read_only")
    with pytest.raises(ApiError) as denied:
        client.linode.instance_create("g6-standard-2", "us-central")
    assert denied.value.status == 403
    assert client.profile().username == "bob"
    stranger = LinodeClient("0" * 64, base_url=client.base_url)
    with pytest.raises(ApiError) as invalid:
        list(stranger.linode.instances())
    stranger.session.close()
    assert (invalid.value.status, invalid.value.errors) == (401, ["Invalid Token"])


def test_the_sdk_reads_a_gpu_linodes_disk_and_profile_and_is_told_why_it_cannot_edit_them(
    world, employee, sdk
):
    client = sdk(employee)
    poller = finished(client, "linode_create")
    linode = client.linode.instance_create(
        GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS
    )
    poller.set_entity_id(linode.id)
    wait(poller)
    linode.invalidate()

    disk, seed = linode.disks
    assert (disk.size, disk.filesystem, disk.status) == (linode.specs.disk, "ext4", "ready")
    assert (seed.label, seed.status) == ("NoCloud seed (cidata)", "ready")
    (config,) = linode.configs
    assert config.kernel.id == "linode/direct-disk" and config.root_device == "/dev/vda"
    # The SDK turns the device map into Disk objects and loads them on first use.
    assert config.devices.sda.id == disk.id and config.devices.sda.size == disk.size
    assert config.devices.sdb.id == seed.id and config.devices.sdc is None

    with pytest.raises(ApiError) as refused:
        disk.resize(disk.size * 2)
    assert refused.value.status == 400 and "Resize the Linode" in refused.value.errors[0]
    with pytest.raises(ApiError) as refused:
        config.delete()
    assert refused.value.status == 400 and "cannot be deleted" in refused.value.errors[0]
    linode.invalidate()
    assert [d.id for d in linode.disks] == [disk.id, seed.id] and [c.id for c in linode.configs] == [
        config.id
    ]


def test_the_sdk_rebuilds_and_resets_the_root_password_of_a_gpu_linode(world, employee, sdk):
    make_image("linode/debian12")
    client = sdk(employee)
    poller = finished(client, "linode_create")
    linode = client.linode.instance_create(
        GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS
    )
    poller.set_entity_id(linode.id)
    wait(poller)
    address = list(linode.ipv4)

    poller = finished(client, "linode_rebuild", linode.id)
    assert linode.rebuild("linode/debian12", root_pass="Rebu1lt-Horse-Battery")
    assert linode.status == "rebuilding"  # the SDK took the answer's Linode object
    wait(poller)
    linode.invalidate()
    assert (linode.image.id, linode.status, list(linode.ipv4)) == ("linode/debian12", "running", address)

    with pytest.raises(ApiError) as refused:
        linode.reset_instance_root_password("Res3t-Horse-Battery")
    assert refused.value.status == 400 and "shut down" in refused.value.errors[0]
    poller = finished(client, "linode_shutdown", linode.id)
    linode.shutdown()
    wait(poller)
    poller = finished(client, "password_reset", linode.id)
    linode.reset_instance_root_password("Res3t-Horse-Battery")
    wait(poller)
    linode.invalidate()
    assert linode.status == "offline"


def test_the_sdk_reads_a_gpu_linode_s_addresses(world, employee, sdk):
    client = sdk(employee)
    linode = client.linode.instance_create(
        GPU_PLAN, "us-east", image="linode/ubuntu22.04", root_pass=ROOT_PASS
    )
    linode.invalidate()
    (address,) = linode.ipv4
    ips = linode.ips
    (public,) = ips.ipv4.public
    assert (public.address, public.linode_id, public.prefix, public.subnet_mask, public.public) == (
        address, linode.id, 24, "255.255.255.0", True,
    )  # fmt: skip
    assert public.region.id == "us-east" and public.gateway.endswith(".1")
    assert ips.ipv4.private == [] and ips.ipv6.link_local.address.startswith("fe80::")
    assert [ip.address for ip in client.networking.ips()] == [address]
    one = IPAddress(client, address)
    assert (one.linode_id, one.gateway) == (linode.id, public.gateway)

    assert linode.delete()
    assert list(client.networking.ips()) == []
