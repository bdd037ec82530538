"""The NoCloud seed: a small ISO 9660 volume labelled `cidata` that cloud-init (and cloudbase-init on
Windows) reads at boot, holding meta-data, user-data and network-config.

`build_seed_iso` makes the image in memory with pycdlib (pure Python: Rock Ridge and Joliet names, so
every guest sees `meta-data`, not `META_DAT.;1`). `ensure_seed` puts it into the host's storage pool
through libvirt's volume upload stream (virStorageVolUpload), reads it back and checks the three files,
and removes the instance's older seeds (lifecycle.ensure_absent removes the last one with the domain).
The volume's name carries a digest of the three files
(`SeedSpec.volume`), so new credentials make a new volume and a new domain definition, and running the
call twice finds the volume there and does nothing.

libvirt's test driver has no volume upload (it answers VIR_ERR_NO_SUPPORT): there the volume is created
with the image's size and the outcome is `Outcome.SIMULATED`, never a silent success. What the seed holds
is then only in the DomainSpec and the ISO the worker built; the real-libvirtd test reads it in a guest.
"""

import io
import xml.etree.ElementTree as ET

import libvirt
import pycdlib

from hypervisor import faults
from hypervisor.connection import translated, uri_of
from hypervisor.errors import PermanentHypervisorError
from hypervisor.faults import Step
from hypervisor.lifecycle import Outcome, _pool, _remove_seeds, _volume
from hypervisor.spec import SEED_FILES, SeedSpec, seed_volume_prefix
from hypervisor.volumes import _abort_quietly, _delete_quietly, is_simulated

VOLUME_LABEL = "cidata"  # what NoCloud looks for


def build_seed_iso(seed: SeedSpec) -> bytes:
    """The `cidata` ISO image holding the seed's files, as bytes (about 70 KiB)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    try:
        for name, text in seed.files.items():
            data = text.encode()
            iso_name = "/" + name.replace("-", "_").upper() + ".;1"
            iso.add_fp(io.BytesIO(data), len(data), iso_name, rr_name=name, joliet_path="/" + name)
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def read_seed_iso(data: bytes) -> dict[str, str]:
    """The files of a seed image by their Rock Ridge names, and its volume label under "label"."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        files = {"label": iso.pvd.volume_identifier.decode().strip()}
        for name in SEED_FILES:
            out = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(out, rr_path="/" + name)
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue
            files[name] = out.getvalue().decode()
    finally:
        iso.close()
    return files


def ensure_seed(conn: libvirt.virConnect, seed: SeedSpec, iso: bytes) -> Outcome:
    """The seed volume `seed.volume` holds `iso` (built from `seed` by the caller), and no older seed of
    the instance is left in the pool. A volume that is there but does not read back right (an upload cut
    off midway) is replaced."""
    uri = uri_of(conn)
    faults.check(Step.SEED, uri)
    simulated = is_simulated(uri)
    with translated(uri=uri, step=Step.SEED):
        pool = _pool(conn, seed.pool, uri=uri)
        volume = _volume(pool, seed.volume)
        if volume is not None and (simulated or _holds(conn, volume, seed, uri=uri)):
            _remove_older(pool, seed)
            return Outcome.ALREADY
        if volume is not None:
            volume.delete(0)
        volume = pool.createXML(_seed_volume_xml(seed.volume, len(iso)), 0)
        try:
            outcome = _upload(conn, volume, iso, simulated=simulated, uri=uri)
            if outcome != Outcome.SIMULATED and not _holds(conn, volume, seed, uri=uri):
                raise PermanentHypervisorError(
                    f"seed volume {seed.volume!r} does not read back as written", uri=uri, step=str(Step.SEED)
                )
        except BaseException:
            _delete_quietly(volume)
            raise
        _remove_older(pool, seed)
    return outcome


def remove_seeds(conn: libvirt.virConnect, pool_name: str, instance_id: int) -> Outcome:
    """Delete every seed volume of the instance in the pool (lifecycle.ensure_absent does too)."""
    uri = uri_of(conn)
    faults.check(Step.UNDEFINE, uri)
    with translated(uri=uri, step=Step.UNDEFINE):
        pool = _pool(conn, pool_name, uri=uri, required=False)
        if pool is None or not _remove_seeds(pool, instance_id):
            return Outcome.ALREADY
    return Outcome.REMOVED


def seed_volumes(conn: libvirt.virConnect, pool_name: str, instance_id: int) -> list[str]:
    """The names of the instance's seed volumes in the pool (one, once a seed step finished)."""
    uri = uri_of(conn)
    with translated(uri=uri, step=Step.SEED):
        pool = _pool(conn, pool_name, uri=uri, required=False)
        if pool is None:
            return []
        return sorted(
            v.name() for v in pool.listAllVolumes(0) if v.name().startswith(seed_volume_prefix(instance_id))
        )


def _upload(
    conn: libvirt.virConnect, volume: libvirt.virStorageVol, iso: bytes, *, simulated: bool, uri: str
) -> Outcome:
    stream = conn.newStream(0)
    try:
        volume.upload(stream, 0, len(iso), 0)
    except libvirt.libvirtError as exc:
        _abort_quietly(stream)
        if simulated and exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return Outcome.SIMULATED  # the test driver keeps no volume data: nothing to upload into
        raise
    try:
        view = memoryview(iso)
        while view:
            sent = stream.send(view.tobytes())
            view = view[sent:]
        stream.finish()
    except BaseException:
        _abort_quietly(stream)
        raise
    return Outcome.CREATED


def _holds(conn: libvirt.virConnect, volume: libvirt.virStorageVol, seed: SeedSpec, *, uri: str) -> bool:
    """Whether the volume reads back as an image of exactly the seed's files."""
    stream = conn.newStream(0)
    chunks = []
    try:
        volume.download(stream, 0, 0, 0)
        while chunk := stream.recv(256 * 1024):
            chunks.append(chunk)
        stream.finish()
    except BaseException:
        _abort_quietly(stream)
        raise
    try:
        files = read_seed_iso(b"".join(chunks))
    except pycdlib.pycdlibexception.PyCdlibException:
        return False
    return files == {"label": VOLUME_LABEL, **seed.files}


def _remove_older(pool: libvirt.virStoragePool, seed: SeedSpec) -> None:
    for volume in pool.listAllVolumes(0):
        name = volume.name()
        if name.startswith(seed_volume_prefix(seed.instance_id)) and name != seed.volume:
            volume.delete(0)


def _seed_volume_xml(name: str, size: int) -> str:
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = name
    ET.SubElement(volume, "capacity", unit="bytes").text = str(size)
    ET.SubElement(volume, "allocation", unit="bytes").text = str(size)
    ET.SubElement(ET.SubElement(volume, "target"), "format", type="raw")
    return ET.tostring(volume, encoding="unicode")


__all__ = ["VOLUME_LABEL", "build_seed_iso", "ensure_seed", "read_seed_iso", "remove_seeds", "seed_volumes"]
