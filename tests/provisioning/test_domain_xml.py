"""Domain XML for real allocation rows on the GPU host profiles: exactly what was allocated, nothing else."""

import xml.etree.ElementTree as ET

import pytest

from hypervisor.domain_xml import DomainSpecError, build_domain_xml
from hypervisor.profiles import A100_2X4, RTX6000_2X2, RTX6000_NONUMA
from hypervisor.xmlutil import parse_cpuset
from inventory.models import GpuDevice, Host, HostCpu
from networking.services import address_claim
from provisioning.domain_spec import domain_spec_for
from provisioning.models import AllocatedMemory
from tests.builders import make_allocation, make_gpu_plan, make_image, make_instance, make_profile_host
from tests.libvirt_schema import assert_valid

pytestmark = pytest.mark.django_db

# Linode's RTX 6000 plans: vCPUs and memory for 1..4 GPUs.
PLANS = {1: (8, 32768), 2: (16, 65536), 3: (20, 98304), 4: (24, 131072)}


def allocate(profile: str, gpus: int, *, image=None):
    host = make_profile_host(profile)
    vcpus, memory = PLANS[gpus]
    instance = make_instance(plan=make_gpu_plan(gpus), image=image or make_image())
    allocation = make_allocation(instance=instance, host=host, gpus=gpus, vcpus=vcpus, memory_mib=memory)
    return instance, allocation


@pytest.mark.parametrize("profile", [RTX6000_2X2, A100_2X4])
@pytest.mark.parametrize("gpus", [1, 2, 3, 4])
def test_the_xml_holds_exactly_the_allocation(profile, gpus):
    instance, allocation = allocate(profile, gpus)
    xml = build_domain_xml(domain_spec_for(instance=instance, allocation=allocation))
    assert_valid(xml)
    domain = ET.fromstring(xml)

    pins = {int(p.get("vcpu")): int(p.get("cpuset")) for p in domain.findall("cputune/vcpupin")}
    assert pins == {row.vcpu: row.cpu.cpu_id for row in allocation.cpus.select_related("cpu")}
    assert len(pins) == PLANS[gpus][0]

    memory_nodes = {
        row.numa_node.index: row.memory_mib for row in allocation.memory.select_related("numa_node")
    }
    memnodes = {int(m.get("cellid")): int(m.get("nodeset")) for m in domain.findall("numatune/memnode")}
    assert sorted(memnodes.values()) == sorted(memory_nodes)
    assert set(parse_cpuset(domain.find("numatune/memory").get("nodeset"))) == set(memory_nodes)
    assert all(m.get("mode") == "strict" for m in domain.iter("memnode"))
    cells = {int(c.get("id")): c for c in domain.findall("cpu/numa/cell")}
    for cell_id, host_node in memnodes.items():
        assert int(cells[cell_id].get("memory")) == memory_nodes[host_node]
        guest_vcpus = parse_cpuset(cells[cell_id].get("cpus"))
        host_cpus = HostCpu.objects.filter(host=allocation.host, cpu_id__in=[pins[v] for v in guest_vcpus])
        assert {cpu.numa_node.index for cpu in host_cpus} == {host_node}  # a cell's vCPUs run on its node

    allocated_functions = {f for row in allocation.gpus.select_related("gpu") for f in row.gpu.functions}
    passed = {
        "{domain}:{bus}:{slot}.{function}".format(
            **{k: a.get(k)[2:] for k in ("domain", "bus", "slot")}, function=a.get("function")[2:]
        )
        for a in domain.findall("devices/hostdev/source/address")
    }
    assert passed == allocated_functions
    assert len(passed) == gpus * (4 if profile == RTX6000_2X2 else 1)

    emulator = set(parse_cpuset(domain.find("cputune/emulatorpin").get("cpuset")))
    reserved = HostCpu.objects.filter(host=allocation.host, reserved=True, numa_node__index__in=memory_nodes)
    assert emulator == {cpu.cpu_id for cpu in reserved}
    assert not emulator & set(pins.values())
    assert domain.find("cpu/topology").get("threads") == "2"
    assert domain.find("memoryBacking/hugepages/page") is not None


def test_three_gpus_on_the_rtx_server_span_both_nodes_each_card_behind_its_nodes_bus():
    instance, allocation = allocate(RTX6000_2X2, 3)
    spec = domain_spec_for(instance=instance, allocation=allocation)
    assert [(c.host_node, len(c.vcpus), c.memory_mib) for c in spec.cells] == [(0, 14, 65536), (1, 6, 32768)]
    assert [(g.functions[0], g.guest_cell) for g in spec.gpus] == [
        ("0000:3b:00.0", 0),
        ("0000:5e:00.0", 0),
        ("0000:86:00.0", 1),
    ]
    domain = ET.fromstring(build_domain_xml(spec))
    node_of_bus = {
        c.get("index"): c.findtext("target/node")
        for c in domain.findall("devices/controller")
        if c.get("model") == "pcie-expander-bus"
    }
    port_bus = {
        c.get("index"): c.find("address").get("bus")
        for c in domain.findall("devices/controller")
        if c.get("model") == "pcie-root-port"
    }
    for hostdev in domain.findall("devices/hostdev"):
        port = str(int(hostdev.find("address").get("bus"), 16))
        guest_node = node_of_bus[str(int(port_bus[port], 16))]
        host_bus = hostdev.find("source/address").get("bus")
        assert guest_node == ("0" if host_bus in ("0x3b", "0x5e") else "1")


def test_a_windows_image_gets_uefi_and_hyperv_and_the_disk_is_an_overlay_of_it():
    instance, allocation = allocate(
        RTX6000_2X2, 1, image=make_image("gpuadmin/windows-server-2022", windows=True)
    )
    spec = domain_spec_for(instance=instance, allocation=allocation)
    assert spec.uefi and spec.windows
    assert spec.disk.backing_volume == "gpuadmin--windows-server-2022.qcow2"
    assert spec.disk.volume == f"gpuadmin-{instance.pk}.qcow2"
    assert spec.disk.capacity_mib == 640 * 1024
    assert (spec.name, spec.uuid, spec.instance_id) == (
        f"gpuadmin-{instance.pk}",
        str(instance.domain_uuid),
        instance.pk,
    )
    assert_valid(build_domain_xml(spec))


def test_hostdevs_can_be_left_out_and_the_domain_type_chosen():
    instance, allocation = allocate(RTX6000_2X2, 2)
    spec = domain_spec_for(instance=instance, allocation=allocation, include_gpus=False, domain_type="qemu")
    domain = ET.fromstring(build_domain_xml(spec))
    assert domain.findall("devices/hostdev") == [] and domain.get("type") == "qemu"
    assert len(domain.findall("cputune/vcpupin")) == 16


def test_memory_not_wholly_on_huge_pages_is_not_backed_by_them():
    instance, allocation = allocate(RTX6000_2X2, 1)
    AllocatedMemory.objects.filter(allocation=allocation).update(hugepages_1g=0)
    assert not domain_spec_for(instance=instance, allocation=allocation).hugepages_1g


def test_a_card_without_numa_node_sits_on_the_root_bus():
    host = make_profile_host(RTX6000_NONUMA)
    instance = make_instance(plan=make_gpu_plan(1), image=make_image())
    allocation = make_allocation(instance=instance, host=host, gpus=0, vcpus=8, memory_mib=32768)
    card = GpuDevice.objects.filter(host=host).first()
    allocation.gpus.create(gpu=card)
    spec = domain_spec_for(instance=instance, allocation=allocation)
    assert [(g.functions, g.guest_cell) for g in spec.gpus] == [(tuple(card.functions), None)]
    assert not spec.hugepages_1g  # this host has no 1 GiB pages
    assert_valid(build_domain_xml(spec))


def test_vcpus_that_are_not_sibling_pairs_get_a_one_thread_topology():
    instance, allocation = allocate(RTX6000_2X2, 1)
    assert domain_spec_for(instance=instance, allocation=allocation).threads_per_core == 2
    # Swap vCPUs 1 and 2: vCPUs 0 and 1 now run on two different cores.
    second, third = allocation.cpus.get(vcpu=1), allocation.cpus.get(vcpu=2)
    for row, vcpu in ((second, 999), (third, 1), (second, 2)):
        row.vcpu = vcpu
        row.save(update_fields=["vcpu"])
    spec = domain_spec_for(instance=instance, allocation=allocation)
    assert spec.threads_per_core == 1
    assert ET.fromstring(build_domain_xml(spec)).find("cpu/topology").get("threads") == "1"


def test_an_allocation_with_cpus_but_no_memory_on_a_node_is_refused():
    instance, allocation = allocate(RTX6000_2X2, 3)
    allocation.memory.filter(numa_node__index=1).delete()
    with pytest.raises(DomainSpecError, match="vCPUs on nodes \\[0, 1\\] but memory on nodes \\[0\\]"):
        domain_spec_for(instance=instance, allocation=allocation)


def test_the_nic_joins_the_host_s_bridge_filtered_to_the_instance_s_pool_address():
    instance, allocation = allocate(RTX6000_2X2, 1)
    Host.objects.filter(pk=allocation.host_id).update(bridge="br-pub")
    allocation.host.refresh_from_db()
    address = address_claim(instance=instance, region=instance.region)
    xml = build_domain_xml(domain_spec_for(instance=instance, allocation=allocation))
    assert_valid(xml)
    interface = ET.fromstring(xml).find("devices/interface")
    assert interface.get("type") == "bridge" and interface.find("source").get("bridge") == "br-pub"
    assert interface.find("filterref").get("filter") == "clean-traffic"
    assert interface.find("filterref/parameter").attrib == {"name": "IP", "value": address.address}
    plan = allocation.instance_type
    assert interface.find("bandwidth/outbound").get("average") == str(plan.network_out_mbps * 125)


def test_a_four_card_a100_guest_gets_a_64_bit_hole_that_maps_all_four_bars():
    instance, allocation = allocate(A100_2X4, 4)
    bar_mib = allocation.gpus.first().gpu.model.bar_mib
    assert bar_mib == 128 * 1024  # the model's record, not a constant of the builder
    xml = build_domain_xml(domain_spec_for(instance=instance, allocation=allocation))
    assert_valid(xml)
    domain = ET.fromstring(xml)
    (root,) = [c for c in domain.findall("devices/controller") if c.get("model") == "pcie-root"]
    hole_kib = int(root.find("pcihole64").text)
    assert root.find("pcihole64").get("unit") == "KiB"
    assert hole_kib >= 4 * 2 * bar_mib * 1024  # each card's BAR, aligned beside its small BARs
    assert len(domain.findall("devices/hostdev")) == 4


def test_the_seed_is_a_read_only_scsi_cdrom_and_a_kernel_image_boots_its_kernel(settings, tmp_path):
    settings.GPUADMIN_CONSOLE_LOG_DIR = str(tmp_path)
    kernel = make_image("linode/kernel-test")
    kernel.kernel, kernel.initrd, kernel.kernel_cmdline = "/boot/vmlinuz", "/boot/initrd.img", "console=ttyS0"
    kernel.save()
    instance, allocation = allocate(RTX6000_2X2, 3, image=kernel)  # three cards: both nodes
    spec = domain_spec_for(instance=instance, allocation=allocation)
    xml = build_domain_xml(spec)
    assert_valid(xml)
    domain = ET.fromstring(xml)
    assert [domain.findtext(f"os/{tag}") for tag in ("kernel", "initrd", "cmdline")] == [
        "/boot/vmlinuz",
        "/boot/initrd.img",
        "console=ttyS0",
    ]
    assert domain.find("os/boot") is None
    (cdrom,) = domain.findall("devices/disk[@device='cdrom']")
    assert cdrom.find("source").attrib == {"pool": spec.seed.pool, "volume": spec.seed.volume}
    assert cdrom.find("target").attrib == {"dev": "sda", "bus": "scsi"} and cdrom.find("readonly") is not None
    assert domain.find("devices/controller[@type='scsi']").get("model") == "virtio-scsi"
    log = domain.find("devices/serial/log")
    assert log.get("file") == str(tmp_path / f"gpuadmin-{instance.pk}-console.log")
    assert len(domain.findall("numatune/memnode")) == 2

    settings.GPUADMIN_BIND_GUEST_MEMORY = False
    unbound = ET.fromstring(build_domain_xml(domain_spec_for(instance=instance, allocation=allocation)))
    assert unbound.find("numatune") is None and len(unbound.findall("cpu/numa/cell")) == 2


def test_an_instance_deployed_from_no_image_has_no_seed():
    instance, allocation = allocate(RTX6000_2X2, 1)
    instance.image = None
    spec = domain_spec_for(instance=instance, allocation=allocation)
    assert spec.seed is None
    assert ET.fromstring(build_domain_xml(spec)).find("devices/disk[@device='cdrom']") is None
