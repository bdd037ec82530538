"""A guest's disk volume beyond its creation: grow it in place, copy it to another host, remove it.

A volume is the customer's data. Nothing here deletes a source volume: `copy_volume` only writes the
target, reads it back and says whether it matches; the caller removes the source once the copy is
verified and the new domain defined (provisioning.workflows).

The copy streams the volume file through libvirt (virStorageVolDownload on the source, Upload on the
target) in chunks of `chunk_bytes`, so a 2 TB disk never sits in memory, and hashes what it sent; the
verify pass downloads the target and hashes what arrived. The file is copied byte for byte: a qcow2
overlay names its image relative to its own directory (lifecycle.ensure_volume makes it so), so it
finds the same image volume in the target host's pool.

libvirt's test driver implements neither streams nor resize. Its volumes hold no data, so on a
test-driver host these calls are simulated: the target volume is created with the source's shape and
the outcome is `Outcome.SIMULATED`, never a silent success.
"""

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlsplit

import libvirt

from hypervisor import faults
from hypervisor.connection import translated, uri_of
from hypervisor.errors import PermanentHypervisorError
from hypervisor.faults import Step
from hypervisor.lifecycle import Outcome, _pool, _volume
from hypervisor.spec import DiskSpec

MIB = 1024 * 1024
COPY_CHUNK_BYTES = 4 * MIB


@dataclass(frozen=True)
class VolumeInfo:
    capacity_mib: int  # what the guest sees (a qcow2's virtual size)
    physical_bytes: int  # the size of the file the copy streams
    backing_volume: str | None  # the image it is an overlay of, as the volume names it
    backing_format: str = "raw"


@dataclass(frozen=True)
class CopyReport:
    outcome: Outcome  # COPIED, ALREADY (the target already held a verified copy) or SIMULATED
    bytes_copied: int
    chunks: int
    sha256: str | None  # of the source as sent, equal to the target as read back; None when simulated


def is_simulated(uri: str) -> bool:
    """libvirt's test driver: volumes without data, no streams, no resize."""
    return urlsplit(uri).scheme.split("+")[0] == "test"  # test:///... and test+unix://... alike


def volume_info(conn: libvirt.virConnect, disk: DiskSpec) -> VolumeInfo | None:
    """The volume's size and backing image, or None when it does not exist."""
    uri = uri_of(conn)
    with translated(uri=uri, step=Step.VOLUME):
        pool = _pool(conn, disk.pool, uri=uri, required=False)
        volume = _volume(pool, disk.volume) if pool is not None else None
        return _info(volume) if volume is not None else None


def grow_volume(conn: libvirt.virConnect, disk: DiskSpec) -> Outcome:
    """Grow the volume to `disk.capacity_mib`. Never shrinks: a larger volume is left as it is.

    The guest's partition and filesystem are grown by cloud-init (growpart, resizefs) at its next boot.
    """
    uri = uri_of(conn)
    faults.check(Step.GROW, uri)
    with translated(uri=uri, step=Step.GROW):
        volume = _require(conn, disk, uri=uri, step=Step.GROW)
        if _info(volume).capacity_mib >= disk.capacity_mib:
            return Outcome.ALREADY
        if is_simulated(uri):
            return Outcome.SIMULATED
        volume.resize(disk.capacity_mib * MIB, 0)
    return Outcome.GROWN


def remove_volume(conn: libvirt.virConnect, disk: DiskSpec) -> Outcome:
    """Delete the volume (the domain stays). For a source whose copy is verified, and for a failed copy."""
    uri = uri_of(conn)
    faults.check(Step.UNDEFINE, uri)
    with translated(uri=uri, step=Step.UNDEFINE):
        pool = _pool(conn, disk.pool, uri=uri, required=False)
        volume = _volume(pool, disk.volume) if pool is not None else None
        if volume is None:
            return Outcome.ALREADY
        volume.delete(0)
    return Outcome.REMOVED


def copy_volume(
    source_conn: libvirt.virConnect,
    source: DiskSpec,
    target_conn: libvirt.virConnect,
    target: DiskSpec,
    *,
    chunk_bytes: int = COPY_CHUNK_BYTES,
) -> CopyReport:
    """Copy the source volume into the target pool and verify it there. The source is never changed.

    A target left by an earlier attempt is kept when it already matches the source (a job run twice
    copies once), and replaced otherwise. On any failure the partial target is deleted and the error
    raised: the source is where it was.
    """
    source_uri, target_uri = uri_of(source_conn), uri_of(target_conn)
    if (source_uri, source.pool) == (target_uri, target.pool):
        raise PermanentHypervisorError(
            f"copy of {source.volume!r} onto itself (pool {source.pool!r})",
            uri=source_uri,
            step=str(Step.COPY),
        )
    faults.check(Step.COPY, source_uri)
    faults.check(Step.COPY, target_uri)
    if is_simulated(source_uri) != is_simulated(target_uri):
        raise PermanentHypervisorError(
            f"cannot copy a volume between a simulated host and a real one ({source_uri} -> {target_uri})",
            uri=source_uri,
            step=str(Step.COPY),
        )
    with translated(uri=source_uri, step=Step.COPY):
        source_volume = _require(source_conn, source, uri=source_uri, step=Step.COPY)
        shape = _info(source_volume)
    target_pool, existing = _target(target_conn, target, shape, uri=target_uri)
    if is_simulated(source_uri):
        if existing is None:
            with translated(uri=target_uri, step=Step.COPY):
                target_pool.createXML(_volume_xml(target.volume, shape), 0)
        return CopyReport(Outcome.SIMULATED, bytes_copied=0, chunks=0, sha256=None)
    if existing is not None:
        source_digest = _digest(source_conn, source_volume, uri=source_uri, chunk_bytes=chunk_bytes)
        if _digest(target_conn, existing, uri=target_uri, chunk_bytes=chunk_bytes) == source_digest:
            return CopyReport(Outcome.ALREADY, bytes_copied=0, chunks=0, sha256=source_digest[1])
        with translated(uri=target_uri, step=Step.COPY):
            existing.delete(0)  # a copy that never verified: not anyone's data
    with translated(uri=target_uri, step=Step.COPY):
        target_volume = target_pool.createXML(_volume_xml(target.volume, shape), 0)
    try:
        sent, chunks, sha256 = _stream(
            source_conn, source_volume, target_conn, target_volume, chunk_bytes=chunk_bytes
        )
        received = _digest(target_conn, target_volume, uri=target_uri, chunk_bytes=chunk_bytes)
        if received != (sent, sha256):
            raise PermanentHypervisorError(
                f"copy of {source.volume!r} does not verify: sent {sent} bytes sha256 {sha256}, "
                f"the target holds {received[0]} bytes sha256 {received[1]}",
                uri=target_uri,
                step=str(Step.COPY),
            )
    except BaseException:
        _delete_quietly(target_volume)
        raise
    return CopyReport(Outcome.COPIED, bytes_copied=sent, chunks=chunks, sha256=sha256)


def copy_volume_between(
    source_conn: libvirt.virConnect,
    target_conn: libvirt.virConnect,
    source: DiskSpec,
    target: DiskSpec,
    *,
    chunk_bytes: int = COPY_CHUNK_BYTES,
) -> CopyReport:
    """`copy_volume` with both connections first, as `hypervisor.routing.on_hosts` calls a call spanning
    two hosts (in the demo's hypervisor service when they are simulated)."""
    return copy_volume(source_conn, source, target_conn, target, chunk_bytes=chunk_bytes)


def _stream(
    source_conn: libvirt.virConnect,
    source: libvirt.virStorageVol,
    target_conn: libvirt.virConnect,
    target: libvirt.virStorageVol,
    *,
    chunk_bytes: int,
) -> tuple[int, int, str]:
    """Download the source and upload what arrives, chunk by chunk. Returns bytes, chunks, sha256."""
    source_uri, target_uri = uri_of(source_conn), uri_of(target_conn)
    download = upload = None
    try:
        with translated(uri=source_uri, step=Step.COPY):
            download = source_conn.newStream(0)
            source.download(download, 0, 0, 0)
        with translated(uri=target_uri, step=Step.COPY):
            upload = target_conn.newStream(0)
            target.upload(upload, 0, 0, 0)
        digest = hashlib.sha256()
        sent = chunks = 0
        while True:
            # The copy step's faults are checked per chunk too, so a test can break the link midway.
            faults.check(Step.COPY, source_uri)
            with translated(uri=source_uri, step=Step.COPY):
                chunk = download.recv(chunk_bytes)
            if not chunk:
                break
            with translated(uri=target_uri, step=Step.COPY):
                _send_all(upload, chunk)
            digest.update(chunk)
            sent += len(chunk)
            chunks += 1
        with translated(uri=source_uri, step=Step.COPY):
            download.finish()
        download = None
        with translated(uri=target_uri, step=Step.COPY):
            upload.finish()
        upload = None
    finally:
        for stream in (download, upload):
            if stream is not None:
                _abort_quietly(stream)
    return sent, chunks, digest.hexdigest()


def _digest(
    conn: libvirt.virConnect, volume: libvirt.virStorageVol, *, uri: str, chunk_bytes: int
) -> tuple[int, str]:
    """(bytes, sha256) of the volume file, read through a download stream."""
    digest = hashlib.sha256()
    size = 0
    stream = conn.newStream(0)
    try:
        with translated(uri=uri, step=Step.COPY):
            volume.download(stream, 0, 0, 0)
            while chunk := stream.recv(chunk_bytes):
                digest.update(chunk)
                size += len(chunk)
            stream.finish()
    except BaseException:
        _abort_quietly(stream)
        raise
    return size, digest.hexdigest()


def _send_all(stream: libvirt.virStream, data: bytes) -> None:
    view = memoryview(data)
    while view:
        sent = stream.send(view.tobytes())
        view = view[sent:]


def _target(
    conn: libvirt.virConnect, disk: DiskSpec, shape: VolumeInfo, *, uri: str
) -> tuple[libvirt.virStoragePool, libvirt.virStorageVol | None]:
    with translated(uri=uri, step=Step.COPY):
        pool = _pool(conn, disk.pool, uri=uri)
        if shape.backing_volume is not None and _volume(pool, shape.backing_volume) is None:
            pool.refresh(0)
            if _volume(pool, shape.backing_volume) is None:
                raise PermanentHypervisorError(
                    f"image volume {shape.backing_volume!r} the disk is an overlay of is not in storage "
                    f"pool {disk.pool!r}: copy the image there first",
                    uri=uri,
                    step=str(Step.COPY),
                )
        return pool, _volume(pool, disk.volume)


def _require(conn: libvirt.virConnect, disk: DiskSpec, *, uri: str, step: Step) -> libvirt.virStorageVol:
    pool = _pool(conn, disk.pool, uri=uri)
    volume = _volume(pool, disk.volume)
    if volume is None:
        raise PermanentHypervisorError(
            f"volume {disk.volume!r} is not in storage pool {disk.pool!r}",
            uri=uri,
            code=libvirt.VIR_ERR_NO_STORAGE_VOL,
            step=str(step),
        )
    return volume


def _info(volume: libvirt.virStorageVol) -> VolumeInfo:
    root = ET.fromstring(volume.XMLDesc(0))
    capacity = int(root.findtext("capacity") or 0)
    physical = root.findtext("physical") or root.findtext("allocation") or "0"
    backing = root.findtext("backingStore/path")
    backing_format = root.find("backingStore/format")
    return VolumeInfo(
        capacity_mib=-(-capacity // MIB),
        physical_bytes=int(physical),
        backing_volume=backing.rsplit("/", 1)[-1] if backing else None,
        backing_format=backing_format.get("type", "raw") if backing_format is not None else "raw",
    )


def _volume_xml(name: str, shape: VolumeInfo) -> str:
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = name
    ET.SubElement(volume, "capacity", unit="MiB").text = str(shape.capacity_mib)
    ET.SubElement(volume, "allocation", unit="MiB").text = "0"
    ET.SubElement(ET.SubElement(volume, "target"), "format", type="qcow2")
    if shape.backing_volume is not None:
        store = ET.SubElement(volume, "backingStore")
        ET.SubElement(store, "path").text = shape.backing_volume
        ET.SubElement(store, "format", type=shape.backing_format)
    return ET.tostring(volume, encoding="unicode")


def _abort_quietly(stream: libvirt.virStream) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass


def _delete_quietly(volume: libvirt.virStorageVol) -> None:
    try:
        volume.delete(0)
    except libvirt.libvirtError:
        pass  # the caller's error says what failed; a partial copy or seed holds nothing anyone needs


__all__ = [
    "COPY_CHUNK_BYTES",
    "CopyReport",
    "VolumeInfo",
    "copy_volume",
    "grow_volume",
    "is_simulated",
    "remove_volume",
    "volume_info",
]
