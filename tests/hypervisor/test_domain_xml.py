import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from hypervisor.domain_xml import METADATA_NS, DomainSpecError, build_domain_xml, spec_digest
from hypervisor.spec import (
    DiskSpec,
    DomainSpec,
    GpuPassthrough,
    GuestCell,
    NetworkSpec,
    VcpuPin,
    image_volume_name,
    mac_for_instance,
)
from tests.libvirt_schema import assert_valid

RTX_FUNCTIONS = tuple(f"0000:3b:00.{f}" for f in range(4))


def two_node_spec(**changes) -> DomainSpec:
    """Two guest cells of 4 vCPUs (two sibling pairs each), one RTX card per cell."""
    spec = DomainSpec(
        name="gpuadmin-42",
        uuid="6695eb01-f6a4-8304-79aa-97f2502e1931",
        instance_id=42,
        title="render-1",
        cells=(
            GuestCell(
                host_node=0,
                memory_mib=32768,
                vcpus=tuple(VcpuPin(v, c) for v, c in enumerate((4, 52, 5, 53))),
            ),
            GuestCell(
                host_node=1,
                memory_mib=32768,
                vcpus=tuple(VcpuPin(v + 4, c) for v, c in enumerate((28, 76, 29, 77))),
            ),
        ),
        gpus=(
            GpuPassthrough(functions=RTX_FUNCTIONS, guest_cell=0),
            GpuPassthrough(functions=tuple(f"0000:86:00.{f}" for f in range(4)), guest_cell=1),
        ),
        emulator_cpus=(0, 1, 48, 49, 24, 25, 72, 73),
        threads_per_core=2,
        hugepages_1g=True,
        disk=DiskSpec("gpuadmin", "gpuadmin-42.qcow2", 655360, image_volume_name("linode/ubuntu22.04")),
        network=NetworkSpec("network", "default", mac_for_instance(42)),
    )
    return replace(spec, **changes)


def parse(spec: DomainSpec) -> ET.Element:
    return ET.fromstring(build_domain_xml(spec))


def test_the_xml_is_valid_for_libvirt_in_every_flavour():
    for spec in (
        two_node_spec(),
        two_node_spec(uefi=True, windows=True),
        two_node_spec(domain_type="qemu", hugepages_1g=False, gpus=()),
        two_node_spec(network=NetworkSpec("bridge", "br0", mac_for_instance(42))),
        two_node_spec(network=NetworkSpec("bridge", "br0", mac_for_instance(42), "203.0.113.7", 10000)),
        two_node_spec(network=NetworkSpec("network", "default", mac_for_instance(42), "203.0.113.7", 40)),
    ):
        assert_valid(build_domain_xml(spec))


def test_a_bridged_nic_sends_only_from_its_address_at_the_plan_s_rate():
    network = NetworkSpec(
        "bridge", "br-guests", mac_for_instance(42), ipv4="203.0.113.7", outbound_mbps=10000
    )
    interface = parse(two_node_spec(network=network)).find("devices/interface")
    assert interface.get("type") == "bridge" and interface.find("source").attrib == {"bridge": "br-guests"}
    filterref = interface.find("filterref")
    assert filterref.get("filter") == "clean-traffic"
    assert [p.attrib for p in filterref.findall("parameter")] == [{"name": "IP", "value": "203.0.113.7"}]
    assert interface.find("bandwidth/outbound").attrib == {"average": "1250000"}  # KB/s: 10 Gbit/s
    assert interface.find("bandwidth/inbound") is None


def test_a_nic_without_an_address_or_rate_has_no_filter_and_no_shaping():
    interface = parse(two_node_spec(network=NetworkSpec("user", "", mac_for_instance(42), "203.0.113.7", 5)))
    assert interface.find("filterref") is None and interface.find("bandwidth") is None
    interface = parse(two_node_spec()).find("devices/interface")
    assert interface.find("filterref") is None and interface.find("bandwidth") is None


def test_vcpus_are_pinned_one_by_one_and_the_emulator_to_reserved_cpus():
    domain = parse(two_node_spec())
    pins = {int(p.get("vcpu")): p.get("cpuset") for p in domain.findall("cputune/vcpupin")}
    assert pins == {0: "4", 1: "52", 2: "5", 3: "53", 4: "28", 5: "76", 6: "29", 7: "77"}
    assert domain.find("cputune/emulatorpin").get("cpuset") == "0-1,24-25,48-49,72-73"
    assert domain.findtext("vcpu") == "8"


def test_memory_is_strictly_bound_per_guest_cell_and_backed_by_1g_pages():
    domain = parse(two_node_spec())
    assert domain.find("numatune/memory").attrib == {"mode": "strict", "nodeset": "0-1"}
    memnodes = [m.attrib for m in domain.findall("numatune/memnode")]
    assert memnodes == [
        {"cellid": "0", "mode": "strict", "nodeset": "0"},
        {"cellid": "1", "mode": "strict", "nodeset": "1"},
    ]
    assert domain.find("memoryBacking/hugepages/page").attrib == {"size": "1", "unit": "GiB"}
    assert parse(two_node_spec(hugepages_1g=False)).find("memoryBacking") is None


def test_guest_numa_cells_and_a_topology_of_sibling_threads():
    cpu = parse(two_node_spec()).find("cpu")
    assert cpu.get("mode") == "host-passthrough"
    assert cpu.find("topology").attrib == {"sockets": "2", "dies": "1", "cores": "2", "threads": "2"}
    assert [c.attrib for c in cpu.findall("numa/cell")] == [
        {"id": "0", "cpus": "0-3", "memory": "32768", "unit": "MiB"},
        {"id": "1", "cpus": "4-7", "memory": "32768", "unit": "MiB"},
    ]


def test_unequal_cells_make_one_socket():
    spec = two_node_spec()
    cells = (spec.cells[0], replace(spec.cells[1], vcpus=spec.cells[1].vcpus[:2]))
    topology = parse(replace(spec, cells=cells)).find("cpu/topology")
    assert topology.attrib == {"sockets": "1", "dies": "1", "cores": "3", "threads": "2"}


def test_each_card_sits_behind_the_expander_bus_of_its_cell_with_its_function_numbers():
    domain = parse(two_node_spec())
    expanders = [c for c in domain.findall("devices/controller") if c.get("model") == "pcie-expander-bus"]
    assert [(c.get("index"), c.findtext("target/node")) for c in expanders] == [("1", "0"), ("2", "1")]
    ports = {
        c.get("index"): c.find("address").get("bus")
        for c in domain.findall("devices/controller")
        if c.get("model") == "pcie-root-port"
    }
    assert ports == {"3": "0x01", "4": "0x02"}
    hostdevs = domain.findall("devices/hostdev")
    assert all(h.attrib == {"mode": "subsystem", "type": "pci", "managed": "yes"} for h in hostdevs)
    sources = [
        (
            h.find("source/address").get("bus"),
            h.find("source/address").get("function"),
            h.find("address").get("bus"),
        )
        for h in hostdevs
    ]
    assert sources == [("0x3b", f"0x{f}", "0x03") for f in range(4)] + [
        ("0x86", f"0x{f}", "0x04") for f in range(4)
    ]
    assert hostdevs[0].find("address").get("multifunction") == "on"
    assert hostdevs[1].find("address").get("multifunction") is None


def test_a_card_without_numa_node_sits_on_the_root_bus():
    spec = two_node_spec(gpus=(GpuPassthrough(functions=("0000:3b:00.0",), guest_cell=None),))
    domain = parse(spec)
    ports = [c for c in domain.findall("devices/controller") if c.get("model") == "pcie-root-port"]
    (port,) = [c for c in ports if c.find("address") is None]  # libvirt places it on pcie.0
    # Both cells' expanders, with no card behind them, get an empty root port each (the guest sees them).
    assert sorted(c.find("address").get("bus") for c in ports if c is not port) == ["0x01", "0x02"]
    assert domain.find("devices/hostdev/address").get("bus") == f"0x{int(port.get('index')):02x}"
    assert_valid(build_domain_xml(spec))


def test_no_gpu_means_no_hostdev():
    spec = two_node_spec()
    assert parse(spec.without_gpus()).findall("devices/hostdev") == []
    assert len(parse(spec).findall("devices/hostdev")) == 8


def test_windows_gets_uefi_hyperv_and_local_time_linux_gets_none_of_it():
    windows = parse(two_node_spec(uefi=True, windows=True))
    assert windows.find("os").get("firmware") == "efi"
    hyperv = windows.find("features/hyperv")
    assert {"relaxed", "vapic", "spinlocks", "synic", "stimer", "vendor_id"} <= {e.tag for e in hyperv}
    assert windows.find("clock").get("offset") == "localtime"
    assert windows.find("clock/timer[@name='hypervclock']").get("present") == "yes"
    linux = parse(two_node_spec())
    assert linux.find("os").get("firmware") is None
    assert linux.find("features/hyperv") is None
    assert linux.find("clock").get("offset") == "utc"


def test_kvm_is_hidden_on_kvm_and_tcg_gets_a_cpu_model_it_can_emulate():
    kvm = parse(two_node_spec())
    assert kvm.get("type") == "kvm"
    assert kvm.find("features/kvm/hidden").get("state") == "on"
    tcg = parse(two_node_spec(domain_type="qemu"))
    assert tcg.get("type") == "qemu"
    assert tcg.find("features/kvm") is None
    assert tcg.find("cpu").get("mode") == "maximum"


def test_q35_a_disk_from_the_image_volume_a_nic_and_a_serial_console():
    domain = parse(two_node_spec())
    assert domain.find("os/type").get("machine") == "q35"
    disk = domain.find("devices/disk")
    assert disk.find("source").attrib == {"pool": "gpuadmin", "volume": "gpuadmin-42.qcow2"}
    assert disk.find("driver").get("type") == "qcow2"
    interface = domain.find("devices/interface")
    assert interface.find("mac").get("address") == "52:54:00:00:00:2a"
    assert interface.find("source").get("network") == "default"
    assert domain.find("devices/serial").get("type") == "pty"
    assert domain.find("devices/console/target").get("type") == "serial"
    assert (domain.findtext("name"), domain.findtext("uuid"), domain.findtext("title")) == (
        "gpuadmin-42",
        "6695eb01-f6a4-8304-79aa-97f2502e1931",
        "render-1",
    )


def test_the_instance_id_and_a_digest_of_the_xml_are_in_our_metadata_namespace():
    xml = build_domain_xml(two_node_spec())
    element = ET.fromstring(xml).find(f"metadata/{{{METADATA_NS}}}instance")
    assert element.get("id") == "42"
    assert spec_digest(xml) == element.get("spec") and element.get("spec").startswith("sha256:")
    assert build_domain_xml(two_node_spec()) == xml
    assert spec_digest(build_domain_xml(two_node_spec(hugepages_1g=False))) != spec_digest(xml)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"domain_type": "xen"}, "domain type 'xen'"),
        ({"cells": ()}, "no guest NUMA cell"),
        ({"cells": (GuestCell(0, 1024, (VcpuPin(1, 4),)),), "threads_per_core": 1}, "numbered 0..n-1"),
        ({"cells": (GuestCell(0, 1024, (VcpuPin(0, 4), VcpuPin(1, 4))),)}, "same host CPU"),
        ({"emulator_cpus": (4,)}, "overlap vCPU pins"),
        ({"threads_per_core": 3}, "not whole 3-thread cores"),
        ({"cells": (GuestCell(0, 1536, tuple(VcpuPin(v, v + 4) for v in range(2))),)}, "whole 1 GiB pages"),
        ({"gpus": (GpuPassthrough(functions=("0000:3b:00.0",), guest_cell=5),)}, "behind guest cell 5"),
        ({"gpus": (GpuPassthrough(("0000:3b:00.0",), 0), GpuPassthrough(("0000:3b:00.0",), 1))}, "twice"),
    ],
)
def test_an_impossible_spec_is_refused_before_any_xml(changes, complaint):
    with pytest.raises(DomainSpecError, match=complaint):
        build_domain_xml(two_node_spec(**changes))


def hole_mib(domain: ET.Element) -> int | None:
    (root,) = [c for c in domain.findall("devices/controller") if c.get("model") == "pcie-root"]
    hole = root.find("pcihole64")
    if hole is None:
        return None
    assert hole.get("unit") == "KiB"
    return int(hole.text) // 1024


def test_the_64_bit_pci_hole_on_the_root_controller_maps_every_cards_bar():
    a100 = 128 * 1024  # an 80 GB A100's BAR1, MiB
    cards = tuple(
        GpuPassthrough(functions=(f"0000:{bus:02x}:00.0",), guest_cell=cell, bar_mib=a100)
        for bus, cell in ((0x17, 0), (0x31, 0), (0xB1, 1), (0xCA, 1))
    )
    spec = two_node_spec(gpus=cards)
    domain = parse(spec)
    # Each BAR sits at a multiple of its size beside its card's small BARs: 2 x 128 GiB per card.
    assert hole_mib(domain) == 1024 * 1024  # 1 TiB
    assert hole_mib(domain) >= 4 * a100
    assert domain.find("cpu/maxphysaddr").get("mode") == "passthrough"
    assert_valid(build_domain_xml(spec))
    assert hole_mib(parse(replace(spec, gpus=cards[:1]))) == 256 * 1024
    assert hole_mib(parse(replace(spec, gpus=cards[:3]))) == 1024 * 1024


def test_small_bars_keep_qemus_default_hole_and_no_card_means_no_hole():
    small = two_node_spec(gpus=(GpuPassthrough(functions=RTX_FUNCTIONS, guest_cell=0, bar_mib=256),))
    assert hole_mib(parse(small)) == 32 * 1024  # never below QEMU's own 32 GiB
    assert hole_mib(parse(two_node_spec(gpus=()))) is None
    assert parse(two_node_spec(gpus=())).find("cpu/maxphysaddr") is None
    # TCG guests emulate their CPU: no host address width to pass through.
    tcg = replace(small, domain_type="qemu", hugepages_1g=False)
    assert hole_mib(parse(tcg)) == 32 * 1024 and parse(tcg).find("cpu/maxphysaddr") is None
    assert_valid(build_domain_xml(tcg))
