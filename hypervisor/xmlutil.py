"""Small helpers shared by the XML readers: strict parsing with errors that say what and where."""

import xml.etree.ElementTree as ET

from hypervisor.errors import DiscoveryError

_UNITS_KIB = {
    "b": 1 / 1024,
    "bytes": 1 / 1024,
    "k": 1,
    "kib": 1,
    "m": 1024,
    "mib": 1024,
    "g": 1024**2,
    "gib": 1024**2,
}


def parse_document(text: str, *, what: str, uri: str) -> ET.Element:
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise DiscoveryError(f"{what} is not well-formed XML ({exc})", uri=uri) from exc


def int_attr(element: ET.Element, name: str, *, what: str, uri: str) -> int:
    value = element.get(name)
    if value is None:
        raise DiscoveryError(f"{what}: <{element.tag}> has no '{name}' attribute", uri=uri)
    return parse_int(value, what=f"{what}: <{element.tag} {name}=...>", uri=uri)


def parse_int(value: str, *, what: str, uri: str) -> int:
    """Decimal or 0x-prefixed hex, as libvirt writes PCI numbers (bus 59 in one place, 0x3b in another)."""
    text = value.strip()
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text, 10)
    except ValueError as exc:
        raise DiscoveryError(f"{what}: {value!r} is not a number", uri=uri) from exc


def memory_kib(element: ET.Element | None, *, what: str, uri: str) -> int:
    if element is None or not (element.text or "").strip():
        raise DiscoveryError(f"{what}: no memory size", uri=uri)
    unit = element.get("unit", "KiB").lower()
    if unit not in _UNITS_KIB:
        raise DiscoveryError(f"{what}: unknown memory unit {unit!r}", uri=uri)
    return int(parse_int(element.text, what=what, uri=uri) * _UNITS_KIB[unit])


def parse_cpuset(text: str) -> tuple[int, ...]:
    """'0-3,8,10-11' -> (0, 1, 2, 3, 8, 10, 11). Raises ValueError on anything else."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            first, last = (int(p) for p in part.split("-", 1))
            if last < first:
                raise ValueError(f"range {part!r} runs backwards")
            cpus.update(range(first, last + 1))
        else:
            cpus.add(int(part))
    return tuple(sorted(cpus))


def format_cpuset(cpus) -> str:
    """(0, 1, 2, 3, 8) -> '0-3,8': the compact form libvirt itself writes."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    start = previous = None
    for cpu in ordered:
        if start is None:
            start = previous = cpu
        elif cpu == previous + 1:
            previous = cpu
        else:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = previous = cpu
    if start is not None:
        parts.append(str(start) if start == previous else f"{start}-{previous}")
    return ",".join(parts)
