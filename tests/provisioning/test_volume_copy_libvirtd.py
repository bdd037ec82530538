"""The customer's disk survives a resize across hosts, on the real libvirtd (qemu:///system).

Two Host rows share this machine's libvirtd, each with its own storage pool (a directory pool), as two
hosts with their own disks would. A marker is written into the guest's volume with qemu-io (the bytes
a guest would see), the instance is resized onto the other host through the service and the worker's
job, and the marker is read back there; the image under the overlay is read through the copy, from
the target pool's own image. A copy that breaks midway leaves the source, the instance and its
allocation where they were.

Outside CI the tests skip when no libvirtd answers; in CI (CI=true) they fail instead.
"""

import hashlib
import os
import shutil
import subprocess

import pytest
from django.test import override_settings

from hypervisor import faults
from hypervisor.connection import connect
from hypervisor.errors import HypervisorError, PermanentHypervisorError
from hypervisor.faults import Step
from hypervisor.lifecycle import Outcome, ensure_absent, ensure_volume
from hypervisor.spec import DiskSpec, image_volume_name, instance_volume_name
from hypervisor.volumes import copy_volume, grow_volume, volume_info
from inventory.models import Host, InstanceType
from inventory.sync import host_enroll
from provisioning.models import Allocation, Instance, Job
from provisioning.services import instance_resize
from tests.builders import make_image, unique
from tests.provisioning.helpers import create, last_job

pytestmark = [pytest.mark.django_db, pytest.mark.libvirtd]

SYSTEM_URI = os.environ.get("GPUADMIN_LIBVIRTD_URI", "qemu:///system")
IMAGE_PATTERN, MARKER = "0x11", "0x5a"
MARKER_AT, MARKER_SIZE = "1M", "4M"  # 4 MiB of marker: the qcow2 file spans several 1 MiB chunks


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def conn():
    if shutil.which("qemu-io") is None:
        pytest.fail("qemu-io is not installed: run scripts/ensure-system-packages --ci")
    try:
        return connect(SYSTEM_URI)
    except HypervisorError as exc:
        message = f"no libvirtd answers at {SYSTEM_URI} ({exc}); scripts/start-libvirtd starts one"
        if in_ci():
            pytest.fail(f"CI must run the libvirtd test: {message}")
        pytest.skip(message)


@pytest.fixture
def pools(conn, tmp_path, db):
    """Two directory pools, each holding the image (whose first 64 KiB carry IMAGE_PATTERN)."""
    image = make_image()
    image.size_mib = 64
    image.save(update_fields=["size_mib"])
    made = []
    for side in ("a", "b"):
        path = tmp_path / side
        path.mkdir()
        name = unique(f"gpuadmin-test-{os.getpid()}-{side}")
        pool = conn.storagePoolCreateXML(
            f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>", 0
        )
        volume = pool.createXML(
            f"<volume><name>{image_volume_name(image.pk)}</name><capacity unit='MiB'>64</capacity>"
            "<target><format type='qcow2'/></target></volume>",
            0,
        )
        qemu_io(volume.path(), f"write -P {IMAGE_PATTERN} 0 64k")
        made.append((name, pool))
    yield image, made[0][0], made[1][0]
    for _, pool in made:
        for volume in pool.listAllVolumes(0):
            volume.delete(0)
        pool.destroy()


def qemu_io(path: str, command: str) -> bool:
    """Run one qemu-io command on a qcow2 file; False when a read's pattern does not match."""
    done = subprocess.run(["qemu-io", "-f", "qcow2", "-c", command, path], capture_output=True, text=True)
    return done.returncode == 0 and "verification failed" not in done.stdout


def path_of(conn, pool: str, volume: str) -> str:
    return conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path()


def file_sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def test_a_volume_streams_to_another_pool_verified_and_finds_that_pools_image(conn, pools):
    image, pool_a, pool_b = pools
    source = DiskSpec(pool_a, unique("gpuadmin-copy") + ".qcow2", 128, image_volume_name(image.pk))
    target = DiskSpec(pool_b, source.volume, 128, source.backing_volume)
    assert ensure_volume(conn, source) == Outcome.CREATED
    source_path = path_of(conn, pool_a, source.volume)
    assert qemu_io(source_path, f"write -P {MARKER} {MARKER_AT} {MARKER_SIZE}")

    report = copy_volume(conn, source, conn, target, chunk_bytes=1024 * 1024)

    assert report.outcome == Outcome.COPIED
    assert report.chunks > 1  # streamed in pieces, never the whole file at once
    assert report.bytes_copied == os.path.getsize(source_path)
    assert report.sha256 == file_sha256(source_path) == file_sha256(path_of(conn, pool_b, target.volume))
    target_path = path_of(conn, pool_b, target.volume)
    assert qemu_io(target_path, f"read -P {MARKER} {MARKER_AT} {MARKER_SIZE}")
    # The image under the overlay is the target pool's: gone from pool a, still read through b.
    conn.storagePoolLookupByName(pool_a).storageVolLookupByName(image_volume_name(image.pk)).delete(0)
    assert qemu_io(target_path, f"read -P {IMAGE_PATTERN} 0 64k")
    assert volume_info(conn, source) is not None  # the copy never touches its source

    again = copy_volume(conn, source, conn, target, chunk_bytes=1024 * 1024)
    assert (again.outcome, again.sha256) == (Outcome.ALREADY, report.sha256)

    grown = DiskSpec(pool_b, target.volume, 256, target.backing_volume)
    assert grow_volume(conn, grown) == Outcome.GROWN
    assert volume_info(conn, target).capacity_mib == 256
    assert grow_volume(conn, target) == Outcome.ALREADY  # never shrinks
    assert qemu_io(target_path, f"read -P {MARKER} {MARKER_AT} {MARKER_SIZE}")


def test_a_copy_that_breaks_midway_leaves_no_target_and_the_source_intact(conn, pools):
    image, pool_a, pool_b = pools
    source = DiskSpec(pool_a, unique("gpuadmin-copy") + ".qcow2", 128, image_volume_name(image.pk))
    target = DiskSpec(pool_b, source.volume, 128, source.backing_volume)
    ensure_volume(conn, source)
    source_path = path_of(conn, pool_a, source.volume)
    assert qemu_io(source_path, f"write -P {MARKER} {MARKER_AT} {MARKER_SIZE}")
    before = file_sha256(source_path)
    # Let through the check on each host and two chunks; the third chunk fails.
    fault = faults.inject(Step.COPY, uri=SYSTEM_URI, after=4, permanent=True)

    with pytest.raises(PermanentHypervisorError, match="copy failed"):
        copy_volume(conn, source, conn, target, chunk_bytes=1024 * 1024)

    assert fault.fired == 1
    assert volume_info(conn, target) is None
    assert file_sha256(source_path) == before


@pytest.fixture
def two_hosts(conn, pools, region):
    """Two standard hosts on this libvirtd, one pool each; plans small enough for this machine."""
    image, pool_a, pool_b = pools
    hosts = []
    with override_settings(GPUADMIN_RESERVED_CORES_PER_NODE=1, GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE=512):
        for pool in (pool_a, pool_b):
            host, _ = host_enroll(
                region=region, hostname=unique("libvirtd-disk"), libvirt_uri=SYSTEM_URI, kind="standard"
            )
            Host.objects.filter(pk=host.pk).update(storage_pool=pool)
            hosts.append(host)
    if not hosts[0].cpus.filter(reserved=False).exists():
        pytest.skip("this machine has no CPU left for a guest beside the reserved one")
    small, larger = (
        InstanceType.objects.create(
            id=unique("g6-disk-test"),
            label="disk test",
            type_class=InstanceType.TypeClass.STANDARD,
            vcpus=1,
            memory_mib=256,
            disk_mib=disk_mib,
            transfer_gb=1,
            network_out_mbps=1,
            price_hourly=0,
            price_monthly=0,
        )
        for disk_mib in (128, 192)
    )
    yield image, small, larger, hosts
    for instance in Instance.objects.filter(host__in=hosts):
        ensure_absent(conn, instance.domain_uuid)


def created_with_marker(conn, two_hosts, employee, run_tasks):
    image, small, larger, hosts = two_hosts
    instance = run_tasks(create, user=employee, plan=small, region=hosts[0].region, image=image, booted=False)
    assert last_job(instance).status == Job.Status.FINISHED, last_job(instance).error
    instance.refresh_from_db()
    source_path = path_of(conn, instance.host.storage_pool, instance_volume_name(instance.pk))
    assert qemu_io(source_path, f"write -P {MARKER} {MARKER_AT} {MARKER_SIZE}")
    Host.objects.filter(pk=instance.host_id).update(state=Host.State.DRAINING)  # it must move
    return instance, larger, source_path


def test_a_resize_across_hosts_brings_the_customers_data_along(conn, two_hosts, employee, run_tasks):
    instance, larger, source_path = created_with_marker(conn, two_hosts, employee, run_tasks)
    source_host = instance.host
    source_allocation = Allocation.objects.get(instance=instance, released_at=None)

    run_tasks(instance_resize, instance=instance, actor=employee, plan=larger)

    job = last_job(instance)
    assert job.status == Job.Status.FINISHED, job.error
    assert "simulated_steps" not in job.params
    instance.refresh_from_db()
    assert instance.host != source_host and instance.status == Instance.Status.OFFLINE
    target_path = path_of(conn, instance.host.storage_pool, instance_volume_name(instance.pk))
    assert qemu_io(target_path, f"read -P {MARKER} {MARKER_AT} {MARKER_SIZE}")
    assert qemu_io(target_path, f"read -P {IMAGE_PATTERN} 0 64k")
    assert (
        volume_info(
            conn, DiskSpec(instance.host.storage_pool, instance_volume_name(instance.pk), 0)
        ).capacity_mib
        == 192
    )
    assert instance.disk_mib == 192
    assert not os.path.exists(source_path)  # deleted, once the copy verified and the domain defined
    domain_xml = conn.lookupByUUIDString(str(instance.domain_uuid)).XMLDesc(0)
    assert f"pool='{instance.host.storage_pool}'" in domain_xml
    source_allocation.refresh_from_db()
    assert source_allocation.released_at is not None
    assert Allocation.objects.get(instance=instance, released_at=None).host == instance.host


def test_a_resize_whose_copy_breaks_midway_leaves_the_instance_and_its_disk_where_they_were(
    conn, two_hosts, employee, run_tasks
):
    instance, larger, source_path = created_with_marker(conn, two_hosts, employee, run_tasks)
    source_host, small = instance.host, instance.instance_type
    allocation = Allocation.objects.get(instance=instance, released_at=None)
    before = file_sha256(source_path)
    faults.inject(Step.COPY, uri=SYSTEM_URI, after=4, permanent=True)

    with override_settings(GPUADMIN_VOLUME_COPY_CHUNK_MIB=1):
        run_tasks(instance_resize, instance=instance, actor=employee, plan=larger)

    job = last_job(instance)
    assert job.status == Job.Status.FAILED and "copy failed" in job.error
    instance.refresh_from_db()
    assert (instance.host, instance.instance_type, instance.status) == (
        source_host,
        small,
        Instance.Status.OFFLINE,
    )
    # The allocation it had, not a new one: same row, same cores and memory.
    assert list(Allocation.objects.filter(instance=instance, released_at=None)) == [allocation]
    allocation.refresh_from_db()
    assert not allocation.move_source
    assert file_sha256(source_path) == before
    assert qemu_io(source_path, f"read -P {MARKER} {MARKER_AT} {MARKER_SIZE}")
    (other,) = [host for host in two_hosts[3] if host.pk != source_host.pk]
    other.refresh_from_db()
    assert volume_info(conn, DiskSpec(other.storage_pool, instance_volume_name(instance.pk), 0)) is None
    domain_xml = conn.lookupByUUIDString(str(instance.domain_uuid)).XMLDesc(0)
    assert f"pool='{source_host.storage_pool}'" in domain_xml
