"""Read a host's NUMA topology from libvirt's capabilities XML (virsh capabilities, <host><topology>)."""

from collections.abc import Mapping

from hypervisor.description import CpuDescription, HugepagePool, NumaCellDescription
from hypervisor.errors import DiscoveryError
from hypervisor.xmlutil import int_attr, memory_kib, parse_cpuset, parse_document, parse_int

PAGE_1G_KIB = 1024 * 1024
PAGE_4K_KIB = 4


def parse_capabilities(
    text: str, *, uri: str, free_pages: Mapping[int, Mapping[int, int]] | None = None
) -> tuple[NumaCellDescription, ...]:
    """The NUMA cells of the host. `free_pages` is {cell: {page size KiB: free pages}} when known.

    Without it every huge page counts as free (a host profile describes an idle host).
    """
    root = parse_document(text, what="capabilities", uri=uri)
    if root.tag != "capabilities":
        raise DiscoveryError(f"capabilities: the document is <{root.tag}>, not <capabilities>", uri=uri)
    cells = root.findall("./host/topology/cells/cell")
    if not cells:
        raise DiscoveryError("capabilities report no NUMA cells (<host><topology><cells> is empty)", uri=uri)
    described = tuple(_cell(cell, uri=uri, free_pages=free_pages or {}) for cell in cells)
    _check_consistent(described, uri=uri)
    return tuple(sorted(described, key=lambda c: c.index))


def _cell(cell, *, uri: str, free_pages: Mapping[int, Mapping[int, int]]) -> NumaCellDescription:
    index = int_attr(cell, "id", what="capabilities cell", uri=uri)
    what = f"capabilities cell {index}"
    memory_mib = memory_kib(cell.find("memory"), what=what, uri=uri) // 1024
    pools = []
    for pages in cell.findall("pages"):
        size_kib = int_attr(pages, "size", what=what, uri=uri)
        if size_kib == PAGE_4K_KIB:
            continue
        total = parse_int((pages.text or "0").strip() or "0", what=f"{what} {size_kib} KiB pages", uri=uri)
        free = free_pages.get(index, {}).get(size_kib, total)
        pools.append(HugepagePool(size_kib=size_kib, total=total, free=free))
    cpus = tuple(_cpu(cpu, what=what, uri=uri) for cpu in cell.findall("./cpus/cpu"))
    if not cpus:
        raise DiscoveryError(f"{what} lists no CPUs", uri=uri)
    one_gig = next((p for p in pools if p.size_kib == PAGE_1G_KIB), None)
    return NumaCellDescription(
        index=index,
        memory_mib=memory_mib,
        cpus=tuple(sorted(cpus, key=lambda c: c.cpu_id)),
        hugepages_1g_total=one_gig.total if one_gig else 0,
        hugepages_1g_free=one_gig.free if one_gig else 0,
        hugepages=tuple(sorted(pools, key=lambda p: p.size_kib)),
    )


def _cpu(cpu, *, what: str, uri: str) -> CpuDescription:
    cpu_id = int_attr(cpu, "id", what=what, uri=uri)
    siblings_text = cpu.get("siblings")
    try:
        siblings = parse_cpuset(siblings_text) if siblings_text else (cpu_id,)
    except ValueError as exc:
        raise DiscoveryError(
            f"{what}: cpu {cpu_id} has unreadable siblings {siblings_text!r}", uri=uri
        ) from exc
    if cpu_id not in siblings:
        raise DiscoveryError(f"{what}: cpu {cpu_id} is not among its own siblings {siblings_text!r}", uri=uri)
    return CpuDescription(
        cpu_id=cpu_id,
        core_id=int_attr(cpu, "core_id", what=f"{what} cpu {cpu_id}", uri=uri),
        socket_id=int_attr(cpu, "socket_id", what=f"{what} cpu {cpu_id}", uri=uri),
        siblings=siblings,
    )


def _check_consistent(cells: tuple[NumaCellDescription, ...], *, uri: str) -> None:
    indexes = [c.index for c in cells]
    if len(set(indexes)) != len(indexes):
        raise DiscoveryError(f"capabilities list NUMA cell ids {indexes} with repeats", uri=uri)
    node_of = {}
    for cell in cells:
        for cpu in cell.cpus:
            if cpu.cpu_id in node_of:
                raise DiscoveryError(
                    f"capabilities list cpu {cpu.cpu_id} in cells {node_of[cpu.cpu_id]} and {cell.index}",
                    uri=uri,
                )
            node_of[cpu.cpu_id] = cell.index
    for cell in cells:
        for cpu in cell.cpus:
            strays = [s for s in cpu.siblings if node_of.get(s) != cell.index]
            if strays:
                raise DiscoveryError(
                    f"capabilities cell {cell.index}: cpu {cpu.cpu_id} has siblings {strays} "
                    "that are not CPUs of the same cell",
                    uri=uri,
                )
