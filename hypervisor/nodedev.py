"""Read PCI node devices (virsh nodedev-dumpxml) and pick out the GPUs with their IOMMU groups."""

from collections.abc import Iterable
from dataclasses import dataclass

from hypervisor.description import GpuDescription
from hypervisor.errors import DiscoveryError
from hypervisor.xmlutil import parse_document, parse_int

DISPLAY_CLASS = 0x03  # VGA (0x0300), XGA, 3D controller (0x0302, headless datacenter cards), other
PCI_BRIDGE_SUBCLASS = 0x0604


@dataclass(frozen=True)
class PciFunction:
    address: str  # 0000:3b:00.0
    class_code: int  # 0x030000
    vendor_id: int
    product_id: int
    vendor_name: str
    product_name: str
    numa_node: int | None
    iommu_group: int | None
    iommu_group_addresses: tuple[str, ...]

    @property
    def is_display(self) -> bool:
        return self.class_code >> 16 == DISPLAY_CLASS

    @property
    def is_bridge(self) -> bool:
        return self.class_code >> 8 == PCI_BRIDGE_SUBCLASS

    @property
    def slot(self) -> str:
        """domain:bus:slot, shared by every function of one card."""
        return self.address.rsplit(".", 1)[0]


def pci_address(domain: int, bus: int, slot: int, function: int) -> str:
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{function:x}"


def parse_pci_device(text: str, *, uri: str) -> PciFunction | None:
    """The PCI function a node device describes, or None when the device is not a PCI device."""
    root = parse_document(text, what="node device", uri=uri)
    name = (root.findtext("name") or "?").strip()
    cap = root.find("./capability[@type='pci']")
    if cap is None:
        return None
    what = f"node device {name}"

    def number(tag: str) -> int:
        value = cap.findtext(tag)
        if value is None:
            raise DiscoveryError(f"{what} has no <{tag}>", uri=uri)
        return parse_int(value, what=f"{what} <{tag}>", uri=uri)

    address = pci_address(number("domain"), number("bus"), number("slot"), number("function"))
    vendor, product = cap.find("vendor"), cap.find("product")
    if vendor is None or product is None or vendor.get("id") is None or product.get("id") is None:
        raise DiscoveryError(f"{what} ({address}) has no vendor or product id", uri=uri)
    numa = cap.find("numa")
    numa_node = parse_int(numa.get("node", "-1"), what=f"{what} <numa>", uri=uri) if numa is not None else -1
    group = cap.find("iommuGroup")
    members: tuple[str, ...] = ()
    if group is not None:
        members = tuple(
            pci_address(
                *(parse_int(a.get(k, ""), what=f"{what} IOMMU group", uri=uri) for k in _ADDRESS_KEYS)
            )
            for a in group.findall("address")
        )
    return PciFunction(
        address=address,
        class_code=number("class"),
        vendor_id=parse_int(vendor.get("id"), what=f"{what} vendor id", uri=uri),
        product_id=parse_int(product.get("id"), what=f"{what} product id", uri=uri),
        vendor_name=(vendor.text or "").strip(),
        product_name=(product.text or "").strip(),
        numa_node=numa_node if numa_node >= 0 else None,
        iommu_group=(
            parse_int(group.get("number", ""), what=f"{what} IOMMU group", uri=uri)
            if group is not None
            else None
        ),
        iommu_group_addresses=members,
    )


_ADDRESS_KEYS = ("domain", "bus", "slot", "function")


def gpus_from(functions: Iterable[PciFunction]) -> tuple[GpuDescription, ...]:
    """Every display-class function, with the rest of its card and whatever else shares its IOMMU group.

    A PCI bridge in the group is not foreign: VFIO leaves bridges to the host. Anything else that is not a
    function of the same card (another card, a NIC behind a switch without ACS, an unknown address) is.
    """
    by_address = {f.address: f for f in functions}
    gpus = []
    for function in sorted(by_address.values(), key=lambda f: f.address):
        if not function.is_display:
            continue
        others = [a for a in function.iommu_group_addresses if a != function.address]
        companions = tuple(sorted(a for a in others if a.rsplit(".", 1)[0] == function.slot))
        foreign = tuple(
            sorted(
                a
                for a in others
                if a.rsplit(".", 1)[0] != function.slot and not (a in by_address and by_address[a].is_bridge)
            )
        )
        gpus.append(
            GpuDescription(
                pci_address=function.address,
                vendor_id=function.vendor_id,
                product_id=function.product_id,
                product_name=function.product_name or f"{function.vendor_id:04x}:{function.product_id:04x}",
                numa_node=function.numa_node,
                iommu_group=function.iommu_group,
                companion_functions=companions,
                foreign_functions=foreign,
            )
        )
    return tuple(gpus)
