"""host_sync / host_enroll against libvirt's test driver, on copies of the host profiles that tests edit."""

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.apps import apps
from django.test import override_settings
from django.utils import timezone

from hypervisor.connection import default_pool
from hypervisor.profiles import A100_2X4, PROFILES_DIR, RTX6000_2X2, RTX6000_NONUMA, STANDARD_2X32
from inventory.models import GpuDevice, GpuModel, Host, HostCpu
from inventory.sync import HostSyncError, host_enroll, host_sync
from provisioning.models import AllocatedCpu, AllocatedGpu
from tests.builders import (
    make_allocation,
    make_gpu_model,
    make_gpu_plan,
    make_instance,
    make_profile_host,
    make_region,
    unique,
)

pytestmark = pytest.mark.django_db


class EditableHost:
    """A copy of a profile a test can change, as if someone had pulled a card or changed the firmware."""

    def __init__(self, profile: str, root: Path) -> None:
        self.dir = root / profile
        shutil.copytree(PROFILES_DIR / profile, self.dir)
        self.uri = f"test://{self.dir}/node.xml?host={profile}"

    def edit(self, name: str, change) -> None:
        path = self.dir / name
        tree = ET.parse(path)
        change(tree.getroot())
        tree.write(path)
        # The test driver reads its node file when a connection opens; a real host answers live.
        default_pool.discard(self.uri)

    def remove_card(self, bus: str) -> None:
        def change(node):
            for device in node.findall("device"):
                if device.findtext("name").startswith(f"pci_0000_{bus}_00_"):
                    node.remove(device)

        self.edit("node.xml", change)

    def device(self, node, address: str):
        name = "pci_" + address.replace(":", "_").replace(".", "_")
        return next(d for d in node.findall("device") if d.findtext("name") == name)


def make_host(profile: str, tmp_path: Path) -> tuple[Host, EditableHost]:
    editable = EditableHost(profile, tmp_path)
    return make_profile_host(profile, uri=editable.uri), editable


def rows(host: Host) -> dict:
    """Everything sync may write for a host, to prove a failed sync wrote nothing."""
    host.refresh_from_db()
    return {
        "host": (host.last_synced_at, host.generation),
        "nodes": list(host.numa_nodes.values()),
        "cpus": list(HostCpu.objects.filter(host=host).values()),
        "gpus": list(GpuDevice.objects.filter(host=host).values()),
    }


def gpu(host: Host, address: str) -> GpuDevice:
    return GpuDevice.objects.get(host=host, pci_address=address)


def test_enrolling_the_rtx_server_records_its_nodes_cpus_and_cards():
    host = make_profile_host(RTX6000_2X2)
    nodes = list(host.numa_nodes.order_by("index"))
    assert [(n.index, n.memory_mib, n.reserved_memory_mib, n.hugepages_1g_total) for n in nodes] == [
        (0, 196608, 8192, 160),
        (1, 196608, 8192, 160),
    ]
    assert [n.cpus.count() for n in nodes] == [48, 48]
    cards = list(GpuDevice.objects.filter(host=host).order_by("pci_address"))
    assert [(c.pci_address, c.numa_node.index, c.state) for c in cards] == [
        ("0000:3b:00.0", 0, "available"),
        ("0000:5e:00.0", 0, "available"),
        ("0000:86:00.0", 1, "available"),
        ("0000:af:00.0", 1, "available"),
    ]
    assert cards[0].functions == ["0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2", "0000:3b:00.3"]
    assert [n.free_gpus for n in nodes] == [2, 2]
    assert host.last_synced_at is not None and host.profile == RTX6000_2X2


def test_the_other_profiles_enroll_with_their_shapes():
    a100 = make_profile_host(A100_2X4)
    assert [n.free_gpus for n in a100.numa_nodes.order_by("index")] == [4, 4]
    assert GpuDevice.objects.filter(host=a100, model__short_name="A100").count() == 8
    nonuma = make_profile_host(RTX6000_NONUMA)
    assert list(GpuDevice.objects.filter(host=nonuma).values_list("numa_node", flat=True)) == [None, None]
    standard = make_profile_host(STANDARD_2X32)
    assert (standard.kind, standard.gpus.count(), HostCpu.objects.filter(host=standard).count()) == (
        "standard",
        0,
        128,
    )


@override_settings(GPUADMIN_RESERVED_CORES_PER_NODE=2)
def test_reserved_cpus_follow_the_policy_whole_cores_first_of_each_node():
    host = make_profile_host(RTX6000_2X2)
    reserved = sorted(HostCpu.objects.filter(host=host, reserved=True).values_list("cpu_id", flat=True))
    assert reserved == [0, 1, 24, 25, 48, 49, 72, 73]
    with override_settings(GPUADMIN_RESERVED_CORES_PER_NODE=3):
        report = host_sync(host=host)
    assert sorted(HostCpu.objects.filter(host=host, reserved=True).values_list("cpu_id", flat=True)) == [
        0, 1, 2, 24, 25, 26, 48, 49, 50, 72, 73, 74,
    ]  # fmt: skip
    assert "cpu 2: reserved -> True" in report.changes


def test_the_bmc_vga_is_ignored_and_said_so():
    host = make_profile_host(STANDARD_2X32)
    report = host_sync(host=host)
    assert report.ignored == ["0000:03:00.0 ASPEED Graphics Family: not a GPU model we sell"]


def test_a_second_sync_of_an_unchanged_host_changes_nothing_but_the_time():
    host = make_profile_host(RTX6000_2X2)
    before = rows(host)
    report = host_sync(host=host)
    after = rows(host)
    assert not report.changed and report.changes == []
    assert after["host"][0] > before["host"][0]
    assert after["host"][1] == before["host"][1]  # no change, so no new generation for placement
    assert {k: v for k, v in after.items() if k != "host"} == {k: v for k, v in before.items() if k != "host"}


def test_a_card_pulled_while_free_is_removed_and_comes_back_when_it_returns(tmp_path):
    host, editable = make_host(RTX6000_2X2, tmp_path)
    generation = host.generation
    editable.remove_card("5e")
    report = host_sync(host=host)
    assert report.changes == ["GPU 0000:5e:00.0: vanished while free; removed"]
    pulled = gpu(host, "0000:5e:00.0")
    assert pulled.state == GpuDevice.State.REMOVED
    assert pulled.missing_since is not None and pulled.state_reason.startswith("not seen by discovery since")
    host.refresh_from_db()
    assert host.generation > generation  # placement sees the change
    assert host.numa_nodes.get(index=0).free_gpus == 1
    assert host_sync(host=host).changes == []

    shutil.copy(PROFILES_DIR / RTX6000_2X2 / "node.xml", editable.dir / "node.xml")
    default_pool.discard(editable.uri)
    assert host_sync(host=host).changes == ["GPU 0000:5e:00.0: back, available"]
    back = gpu(host, "0000:5e:00.0")
    assert (back.state, back.state_reason, back.missing_since) == ("available", "", None)
    assert host.numa_nodes.get(index=0).free_gpus == 2


def test_a_card_pulled_while_allocated_is_flagged_and_its_allocation_left_alone(tmp_path):
    host, editable = make_host(RTX6000_2X2, tmp_path)
    instance = make_instance(plan=make_gpu_plan(1))
    allocation = make_allocation(instance=instance, host=host, gpus=1, vcpus=8, memory_mib=32768)
    held = allocation.gpus.get().gpu
    assert held.pci_address == "0000:3b:00.0"
    editable.remove_card("3b")
    report = host_sync(host=host)
    assert report.changes == ["GPU 0000:3b:00.0: vanished while allocated; flagged, left with its guest"]
    held.refresh_from_db()
    assert held.state == GpuDevice.State.AVAILABLE  # the guest still has it; the state is not sync's to take
    assert held.missing_since is not None
    assert "still held by an active allocation" in held.state_reason
    assert AllocatedGpu.objects.filter(allocation=allocation, released_at=None).count() == 1
    assert AllocatedCpu.objects.filter(allocation=allocation, released_at=None).count() == 8

    released = timezone.now()
    allocation.gpus.update(released_at=released)
    allocation.cpus.update(released_at=released)
    type(allocation).objects.filter(pk=allocation.pk).update(released_at=released)
    assert host_sync(host=host).changes == ["GPU 0000:3b:00.0: vanished while free; removed"]
    assert gpu(host, "0000:3b:00.0").state == GpuDevice.State.REMOVED


def test_a_new_card_sharing_its_iommu_group_arrives_quarantined(tmp_path):
    editable = EditableHost(RTX6000_2X2, tmp_path)

    def share_group(node):
        group = editable.device(node, "0000:86:00.0").find("capability/iommuGroup")
        ET.SubElement(group, "address", domain="0x0000", bus="0x18", slot="0x00", function="0x0")

    editable.edit("node.xml", share_group)
    host = make_profile_host(RTX6000_2X2, uri=editable.uri)
    shared = gpu(host, "0000:86:00.0")
    assert shared.state == GpuDevice.State.QUARANTINED
    assert shared.state_reason.startswith("IOMMU group 25 also holds 0000:18:00.0")
    assert shared.foreign_functions == ["0000:18:00.0"]
    assert host.numa_nodes.get(index=1).free_gpus == 1


def test_a_known_card_whose_group_turns_foreign_is_quarantined_then_released_when_clean(tmp_path):
    host, editable = make_host(RTX6000_2X2, tmp_path)

    def share_group(node):
        group = editable.device(node, "0000:af:00.0").find("capability/iommuGroup")
        ET.SubElement(group, "address", domain="0x0000", bus="0xd8", slot="0x00", function="0x0")

    editable.edit("node.xml", share_group)
    report = host_sync(host=host)
    assert report.changes == [
        "GPU 0000:af:00.0: foreign_functions -> ['0000:d8:00.0']; quarantined (IOMMU group 27 also holds "
        "0000:d8:00.0: the card cannot be passed through alone)"
    ]
    shutil.copy(PROFILES_DIR / RTX6000_2X2 / "node.xml", editable.dir / "node.xml")
    default_pool.discard(editable.uri)
    assert host_sync(host=host).changes == [
        "GPU 0000:af:00.0: foreign_functions -> []; its IOMMU group is clean again; available"
    ]


def test_a_card_without_iommu_group_fails_the_sync_and_changes_nothing(tmp_path):
    host, editable = make_host(RTX6000_2X2, tmp_path)
    editable.remove_card("5e")
    before = rows(host)

    def drop_group(node):
        capability = editable.device(node, "0000:86:00.0").find("capability")
        capability.remove(capability.find("iommuGroup"))

    editable.edit("node.xml", drop_group)
    with pytest.raises(HostSyncError) as caught:
        host_sync(host=host)
    message = str(caught.value)
    assert message.startswith(
        f"{host.hostname} ({host.libvirt_uri}): GPU 0000:86:00.0 reports no IOMMU group"
    )
    assert message.endswith("nothing was changed")
    assert rows(host) == before  # the card pulled at the same time is not marked removed either


def test_malformed_capabilities_fail_the_sync_naming_the_host_and_change_nothing(tmp_path):
    host, editable = make_host(RTX6000_2X2, tmp_path)
    before = rows(host)
    (editable.dir / "capabilities.xml").write_text("<capabilities><host><topology><cells num='2'>")
    with pytest.raises(HostSyncError) as caught:
        host_sync(host=host)
    assert str(caught.value).startswith(
        f"{host.hostname}: {host.libvirt_uri}: capabilities is not well-formed XML"
    )
    assert rows(host) == before


def test_a_refused_connection_fails_the_sync_naming_the_host_and_changes_nothing():
    host = make_profile_host(RTX6000_2X2)
    Host.objects.filter(pk=host.pk).update(libvirt_uri="qemu+tcp://127.0.0.1:1/system", simulated=False)
    host.refresh_from_db()
    before = rows(host)
    with pytest.raises(
        HostSyncError, match=f"^{host.hostname}: qemu\\+tcp://127.0.0.1:1/system: connect failed"
    ):
        host_sync(host=host)
    assert rows(host) == before


def test_an_unknown_card_of_a_vendor_we_sell_is_an_error_and_enrolls_nothing():
    make_gpu_model()  # NVIDIA is a vendor we sell; the A100 is not a model yet
    with pytest.raises(
        HostSyncError, match="is 10de:20b5 \\(GA100 \\[A100 PCIe 80GB\\]\\), which is not a known"
    ):
        host_enroll(
            region=make_region(),
            hostname="a100-unknown",
            libvirt_uri=f"test://{PROFILES_DIR / A100_2X4 / 'node.xml'}?host=a100-unknown",
            kind=Host.Kind.GPU,
        )
    assert not Host.objects.filter(hostname="a100-unknown").exists()
    assert not GpuModel.objects.filter(product_id=0x20B5).exists()


def test_enrolling_an_unreachable_host_adds_nothing():
    count = Host.objects.count()
    with pytest.raises(HostSyncError, match="the host was not added"):
        host_enroll(
            region=make_region(),
            hostname=unique("down"),
            libvirt_uri="qemu+tcp://127.0.0.1:1/system",
            kind="gpu",
        )
    assert Host.objects.count() == count


def test_a_vanished_cpu_is_deleted_unless_an_allocation_refers_to_it(tmp_path):
    host, editable = make_host(RTX6000_2X2, tmp_path)
    instance = make_instance(plan=make_gpu_plan(1))
    make_allocation(instance=instance, host=host, gpus=1, vcpus=8, memory_mib=32768)
    pinned = sorted(
        AllocatedCpu.objects.filter(allocation__instance=instance).values_list("cpu__cpu_id", flat=True)
    )
    assert pinned[:2] == [2, 3]

    def offline(node):  # cpu 2 is pinned; cpu 47 (node 1) is not. Linux drops them from siblings too.
        gone = {"2", "47"}
        for cpus in node.iter("cpus"):
            for cpu in list(cpus):
                if cpu.get("id") in gone:
                    cpus.remove(cpu)
                else:
                    cpu.set("siblings", ",".join(c for c in cpu.get("siblings").split(",") if c not in gone))

    editable.edit("capabilities.xml", offline)
    report = host_sync(host=host)
    assert "cpu 47: vanished, deleted" in report.changes
    assert (
        "cpu 2: vanished (a running allocation is still pinned to it); kept for its allocation history and "
        "reserved, so nothing new is placed on it" in report.changes
    )
    assert not HostCpu.objects.filter(host=host, cpu_id=47).exists()
    assert HostCpu.objects.get(host=host, cpu_id=2).reserved


def test_memory_shrinking_under_what_guests_hold_is_refused(tmp_path):
    host, editable = make_host(RTX6000_2X2, tmp_path)
    make_allocation(
        instance=make_instance(plan=make_gpu_plan(4)), host=host, gpus=4, vcpus=24, memory_mib=131072
    )
    before = rows(host)

    def shrink(node):
        for cell in node.iter("cell"):
            if cell.get("id") == "0":
                cell.find("memory").text = str(32 * 1024 * 1024)

    editable.edit("capabilities.xml", shrink)
    with pytest.raises(
        HostSyncError, match="node 0 now has 32768 MiB, less than the 65536 MiB its guests hold"
    ):
        host_sync(host=host)
    assert rows(host) == before


def test_sync_never_writes_allocation_rows(tmp_path):
    host, editable = make_host(RTX6000_2X2, tmp_path)
    make_allocation(
        instance=make_instance(plan=make_gpu_plan(3)), host=host, gpus=3, vcpus=20, memory_mib=98304
    )
    models = [
        apps.get_model("provisioning", name)
        for name in ("Allocation", "AllocatedGpu", "AllocatedCpu", "AllocatedMemory")
    ]
    before = [list(m.objects.values()) for m in models]
    editable.remove_card("86")
    editable.remove_card("af")
    host_sync(host=host)
    assert [list(m.objects.values()) for m in models] == before
