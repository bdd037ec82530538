import pytest

from hypervisor.errors import DiscoveryError
from hypervisor.nodedev import gpus_from, parse_pci_device

URI = "qemu:///system"


def nodedev(
    address: tuple[int, int, int, int],
    *,
    class_code: int = 0x030000,
    vendor: int = 0x10DE,
    product: int = 0x1E30,
    group: int | None = 30,
    members: list[tuple[int, int, int, int]] | None = None,
    numa: int | None = 0,
) -> str:
    domain, bus, slot, function = address
    members = members if members is not None else [address]
    group_xml = ""
    if group is not None:
        addresses = "".join(
            f"<address domain='0x{d:04x}' bus='0x{b:02x}' slot='0x{s:02x}' function='0x{f:x}'/>"
            for d, b, s, f in members
        )
        group_xml = f"<iommuGroup number='{group}'>{addresses}</iommuGroup>"
    numa_xml = f"<numa node='{numa}'/>" if numa is not None else ""
    return (
        f"<device><name>pci_{domain:04x}_{bus:02x}_{slot:02x}_{function:x}</name><parent>computer</parent>"
        f"<capability type='pci'><class>0x{class_code:06x}</class><domain>{domain}</domain><bus>{bus}</bus>"
        f"<slot>{slot}</slot><function>{function}</function>"
        f"<product id='0x{product:04x}'>TU102GL [Quadro RTX 6000/8000]</product>"
        f"<vendor id='0x{vendor:04x}'>NVIDIA Corporation</vendor>{group_xml}{numa_xml}</capability></device>"
    )


CARD = [(0, 0x3B, 0, f) for f in range(4)]


def parse(*xmls: str):
    return [parse_pci_device(xml, uri=URI) for xml in xmls]


def test_a_gpu_brings_every_function_of_its_card_and_nothing_foreign():
    functions = parse(
        nodedev(CARD[0], members=CARD),
        *(nodedev(a, class_code=0x040300, product=0x10F7, members=CARD) for a in CARD[1:]),
    )
    (gpu,) = gpus_from(functions)
    assert gpu.pci_address == "0000:3b:00.0"
    assert gpu.companion_functions == ("0000:3b:00.1", "0000:3b:00.2", "0000:3b:00.3")
    assert gpu.foreign_functions == ()
    assert (gpu.vendor_id, gpu.product_id, gpu.numa_node, gpu.iommu_group) == (0x10DE, 0x1E30, 0, 30)
    assert gpu.product_name == "TU102GL [Quadro RTX 6000/8000]"


def test_a_pci_bridge_in_the_group_is_not_foreign_but_another_device_is():
    bridge, nic = (0, 0x3A, 0, 0), (0, 0x3C, 0, 0)
    members = [bridge, CARD[0], nic]
    functions = parse(
        nodedev(CARD[0], members=members),
        nodedev(bridge, class_code=0x060400, vendor=0x8086, product=0x2030, members=members),
        nodedev(nic, class_code=0x020000, vendor=0x8086, product=0x1572, members=members),
    )
    (gpu,) = gpus_from(functions)
    assert gpu.foreign_functions == ("0000:3c:00.0",)
    assert gpu.companion_functions == ()


def test_a_group_member_libvirt_does_not_list_counts_as_foreign():
    (gpu,) = gpus_from(parse(nodedev(CARD[0], members=[CARD[0], (0, 0x3D, 0, 0)])))
    assert gpu.foreign_functions == ("0000:3d:00.0",)


def test_two_cards_in_one_group_are_foreign_to_each_other():
    other = (0, 0x3C, 0, 0)
    gpus = gpus_from(
        parse(nodedev(CARD[0], members=[CARD[0], other]), nodedev(other, members=[CARD[0], other]))
    )
    assert [g.foreign_functions for g in gpus] == [("0000:3c:00.0",), ("0000:3b:00.0",)]


def test_every_display_class_counts_3d_controllers_too_but_not_other_classes():
    functions = parse(
        nodedev((0, 0x01, 0, 0), class_code=0x030200, product=0x20B5),
        nodedev((0, 0x02, 0, 0), class_code=0x020000),
        nodedev((0, 0x03, 0, 0), class_code=0x030000, vendor=0x1A03, product=0x2000),
    )
    assert [g.pci_address for g in gpus_from(functions)] == ["0000:01:00.0", "0000:03:00.0"]


def test_no_numa_element_or_minus_one_means_no_numa_node():
    gpus = gpus_from(parse(nodedev(CARD[0], numa=None), nodedev((0, 0x86, 0, 0), numa=-1)))
    assert [g.numa_node for g in gpus] == [None, None]


def test_a_gpu_without_iommu_group_is_described_as_such():
    (gpu,) = gpus_from(parse(nodedev(CARD[0], group=None)))
    assert gpu.iommu_group is None


def test_a_device_that_is_not_pci_is_skipped():
    assert (
        parse_pci_device("<device><name>computer</name><capability type='system'/></device>", uri=URI) is None
    )


@pytest.mark.parametrize(
    ("xml", "complaint"),
    [
        ("<device><name>pci_x", "not well-formed"),
        (nodedev(CARD[0]).replace("<bus>59</bus>", ""), "has no <bus>"),
        (nodedev(CARD[0]).replace("<bus>59</bus>", "<bus>fifty</bus>"), "'fifty' is not a number"),
        (nodedev(CARD[0]).replace(" id='0x10de'", ""), "no vendor or product id"),
        (nodedev(CARD[0]).replace("number='30'", "number='x'"), "IOMMU group"),
    ],
)
def test_malformed_node_devices_are_refused_naming_the_device(xml, complaint):
    with pytest.raises(DiscoveryError, match=complaint):
        parse_pci_device(xml, uri=URI)
