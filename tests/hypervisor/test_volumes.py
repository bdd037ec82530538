"""Volume grow, copy and removal on libvirt's test driver: simulated hosts say they simulated.

The real streams and resizes run on the real libvirtd: tests/provisioning/test_volume_copy_libvirtd.py.
"""

import pytest

from hypervisor import faults
from hypervisor.connection import connect, uri_of
from hypervisor.errors import PermanentHypervisorError, TransientHypervisorError
from hypervisor.faults import Step
from hypervisor.lifecycle import Outcome, ensure_volume
from hypervisor.profiles import RTX6000_2X2, profile_uri
from hypervisor.spec import STORAGE_POOL, DiskSpec, image_volume_name
from hypervisor.volumes import copy_volume, grow_volume, is_simulated, remove_volume, volume_info

DISK = DiskSpec(STORAGE_POOL, "gpuadmin-7.qcow2", 640 * 1024, image_volume_name("linode/ubuntu22.04"))


@pytest.fixture
def source(request):
    return connect(profile_uri(RTX6000_2X2, f"{request.node.name}-a"))


@pytest.fixture
def target(request):
    return connect(profile_uri(RTX6000_2X2, f"{request.node.name}-b"))


def test_a_test_driver_host_is_simulated_and_a_real_one_is_not():
    assert is_simulated(profile_uri(RTX6000_2X2, "h"))
    assert not is_simulated("qemu:///system") and not is_simulated("qemu+tls://gpu-7/system")


def test_a_grow_on_a_simulated_host_says_simulated_and_never_shrinks(source):
    ensure_volume(source, DISK)
    assert grow_volume(source, DISK) == Outcome.ALREADY  # already that large
    assert grow_volume(source, DiskSpec(DISK.pool, DISK.volume, 320 * 1024)) == Outcome.ALREADY
    assert grow_volume(source, DiskSpec(DISK.pool, DISK.volume, 1280 * 1024)) == Outcome.SIMULATED
    assert volume_info(source, DISK).capacity_mib == 640 * 1024  # nothing real happened


def test_a_grow_of_a_missing_volume_is_a_permanent_error(source):
    with pytest.raises(PermanentHypervisorError, match="not in storage pool"):
        grow_volume(source, DISK)


def test_a_simulated_copy_makes_the_target_volume_in_the_sources_shape_and_keeps_the_source(source, target):
    ensure_volume(source, DISK)
    report = copy_volume(source, DISK, target, DISK)
    assert (report.outcome, report.bytes_copied, report.sha256) == (Outcome.SIMULATED, 0, None)
    copied = volume_info(target, DISK)
    assert copied.capacity_mib == 640 * 1024
    assert copied.backing_volume == image_volume_name("linode/ubuntu22.04")
    assert volume_info(source, DISK) is not None
    assert copy_volume(source, DISK, target, DISK).outcome == Outcome.SIMULATED  # again: same end


def test_a_copy_needs_the_image_in_the_target_pool(source, target):
    ensure_volume(source, DISK)
    target.storagePoolLookupByName(STORAGE_POOL).storageVolLookupByName(DISK.backing_volume).delete(0)
    with pytest.raises(PermanentHypervisorError, match="copy the image there first"):
        copy_volume(source, DISK, target, DISK)
    assert volume_info(target, DISK) is None


def test_a_copy_onto_itself_is_refused(source):
    ensure_volume(source, DISK)
    with pytest.raises(PermanentHypervisorError, match="onto itself"):
        copy_volume(source, DISK, source, DISK)


def test_copy_faults_fire_at_the_start_and_midway_and_leave_the_source(source, target):
    ensure_volume(source, DISK)
    with faults.injected(Step.COPY, uri=uri_of(source)):
        with pytest.raises(TransientHypervisorError, match="copy failed"):
            copy_volume(source, DISK, target, DISK)
    assert volume_info(target, DISK) is None and volume_info(source, DISK) is not None
    # `after` lets the first calls through: the copy checks once per host, then once per chunk.
    fault = faults.inject(Step.COPY, after=1, permanent=True)
    with pytest.raises(PermanentHypervisorError):
        copy_volume(source, DISK, target, DISK)
    assert (fault.passed, fault.fired) == (1, 1)


def test_remove_volume_converges(source):
    ensure_volume(source, DISK)
    assert remove_volume(source, DISK) == Outcome.REMOVED
    assert remove_volume(source, DISK) == Outcome.ALREADY
    assert volume_info(source, DISK) is None
