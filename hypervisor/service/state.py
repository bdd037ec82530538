"""Simulated hosts that remember their guests across restarts, as a real host's libvirtd does.

After every call the service writes the host's domains (with their power state) and volumes into a copy
of the host's node file, in the state directory; when it opens the host again (the demo was restarted)
it opens that copy instead of the profile. Without this a restarted demo would find every guest gone,
and reconcile would rebuild them all with boot jobs the customers never asked for.
"""

import hashlib
import os
import tempfile
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import libvirt

# libvirt's test driver reads a domain's power state at load time from this element (5 = shut off).
TEST_NAMESPACE = "http://libvirt.org/schemas/domain/test/1.0"
ET.register_namespace("test", TEST_NAMESPACE)


class SavedHosts:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._written: dict[str, str] = {}

    def path_for(self, uri: str) -> Path:
        return self.directory / f"{hashlib.sha256(uri.encode()).hexdigest()[:24]}.xml"

    def locate(self, uri: str) -> str:
        """The URI to open for a host: its saved copy when there is one."""
        saved = self.path_for(uri)
        return f"test://{quote(saved.as_posix())}" if saved.is_file() else uri

    def save(self, uri: str, conn: libvirt.virConnect) -> bool:
        """Write the host's guests and volumes if they changed since the last write. True if written."""
        node_file = _node_file(uri)
        if node_file is None:
            return False  # test:///default has no node file to start from; nothing to keep
        with self._lock(uri):
            guests = _guests_and_volumes(conn)
            key = ET.tostring(guests, encoding="unicode")
            if self._written.get(uri) == key:
                return False
            document = _merged(ET.parse(node_file).getroot(), guests)
            self._write(uri, f"<!-- saved state of {uri} -->\n{ET.tostring(document, encoding='unicode')}\n")
            self._written[uri] = key
        return True

    def _lock(self, uri: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(uri, threading.Lock())

    def _write(self, uri: str, text: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path_for(uri)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".xml")
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(temporary, target)  # a reader (the next start) sees the old file or the new, never half


def _node_file(uri: str) -> Path | None:
    path = unquote(urlsplit(uri).path)
    return Path(path) if path not in ("", "/default") else None


def _guests_and_volumes(conn: libvirt.virConnect) -> ET.Element:
    """Everything that changes on a simulated host, as one element: its domains and its pools' volumes."""
    state = ET.Element("state")
    for domain in sorted(conn.listAllDomains(0), key=lambda d: d.UUIDString()):
        element = ET.fromstring(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        ET.SubElement(element, f"{{{TEST_NAMESPACE}}}runstate").text = str(domain.state()[0])
        state.append(element)
    for pool in sorted(conn.listAllStoragePools(0), key=lambda p: p.name()):
        holder = ET.SubElement(state, "pool", name=pool.name())
        for volume in sorted(pool.listAllVolumes(0), key=lambda v: v.name()):
            holder.append(ET.fromstring(volume.XMLDesc(0)))
    return state


def _merged(node: ET.Element, state: ET.Element) -> ET.Element:
    """The host's node file with its domains and volumes replaced by the ones in `state`."""
    for child in node.findall("domain"):
        node.remove(child)
    volumes = {holder.get("name"): holder.findall("volume") for holder in state.findall("pool")}
    for pool in node.findall("pool"):
        for volume in pool.findall("volume"):
            pool.remove(volume)
        pool.extend(volumes.get(pool.findtext("name"), []))
    node.extend(state.findall("domain"))
    return node
