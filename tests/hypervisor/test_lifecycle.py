"""Lifecycle calls against libvirt's test driver, on hosts built from the profiles."""

import itertools
import uuid
from dataclasses import replace

import libvirt
import pytest

from hypervisor import faults
from hypervisor.connection import connect
from hypervisor.errors import PermanentHypervisorError, TransientHypervisorError
from hypervisor.faults import Step
from hypervisor.lifecycle import (
    ManagedDomain,
    Outcome,
    domain_state,
    ensure_absent,
    ensure_defined,
    ensure_running,
    ensure_shut_off,
    ensure_volume,
    list_managed_domains,
    preferred_domain_type,
    reset_pci_device,
)
from hypervisor.profiles import RTX6000_2X2, profile_uri, synthetic_uri
from hypervisor.spec import (
    STORAGE_POOL,
    DiskSpec,
    DomainSpec,
    GpuPassthrough,
    GuestCell,
    NetworkSpec,
    VcpuPin,
    domain_name,
    image_volume_name,
    instance_volume_name,
    mac_for_instance,
)

_ids = itertools.count(100)


def spec_for(*, windows: bool = False) -> DomainSpec:
    instance_id = next(_ids)
    return DomainSpec(
        name=domain_name(instance_id),
        uuid=str(uuid.uuid4()),
        instance_id=instance_id,
        cells=(
            GuestCell(
                host_node=0, memory_mib=32768, vcpus=tuple(VcpuPin(v, c) for v, c in enumerate((4, 52)))
            ),
        ),
        gpus=(GpuPassthrough(functions=tuple(f"0000:3b:00.{f}" for f in range(4)), guest_cell=0),),
        emulator_cpus=(0, 48),
        threads_per_core=2,
        uefi=windows,
        windows=windows,
        disk=DiskSpec(
            STORAGE_POOL,
            instance_volume_name(instance_id),
            640 * 1024,
            image_volume_name("gpuadmin/windows-server-2022" if windows else "linode/ubuntu22.04"),
        ),
        network=NetworkSpec("network", "default", mac_for_instance(instance_id)),
    )


@pytest.fixture
def conn(request):
    return connect(profile_uri(RTX6000_2X2, request.node.name))


def volumes(conn) -> list[str]:
    return sorted(conn.storagePoolLookupByName(STORAGE_POOL).listVolumes())


def test_a_guest_goes_round_trip_and_every_call_converges_when_repeated(conn):
    spec = spec_for()
    steps = [
        (lambda: ensure_volume(conn, spec.disk), Outcome.CREATED),
        (lambda: ensure_defined(conn, spec), Outcome.CREATED),
        (lambda: ensure_running(conn, spec.uuid), Outcome.STARTED),
        (lambda: ensure_shut_off(conn, spec.uuid), Outcome.SHUT_DOWN),
        (lambda: ensure_running(conn, spec.uuid), Outcome.STARTED),
        (lambda: ensure_absent(conn, spec.uuid, disk=spec.disk), Outcome.REMOVED),
    ]
    for call, first in steps:
        assert call() == first
        assert call() == Outcome.ALREADY
    assert domain_state(conn, spec.uuid) is None
    assert spec.disk.volume not in volumes(conn)


def test_the_volume_is_a_copy_on_write_overlay_of_the_image(conn):
    spec = spec_for()
    ensure_volume(conn, spec.disk)
    volume = conn.storagePoolLookupByName(STORAGE_POOL).storageVolLookupByName(spec.disk.volume)
    xml = volume.XMLDesc(0)
    # The image named relative to the overlay's directory: a copy of the overlay in another host's
    # pool finds that pool's image (tests/provisioning/test_volume_copy_libvirtd.py boots nothing but
    # reads the image's bytes through the copy).
    assert "<backingStore>\n    <path>linode--ubuntu22.04.qcow2</path>" in xml
    assert volume.info()[1] == 640 * 1024 * 1024 * 1024


def test_the_defined_domain_is_the_builders_xml(conn):
    spec = spec_for(windows=True)
    ensure_defined(conn, spec)
    domain = conn.lookupByUUIDString(spec.uuid)
    xml = domain.XMLDesc(0)
    assert domain.name() == spec.name
    assert "<vcpupin vcpu='1' cpuset='52'/>" in xml
    assert "<memnode cellid='0' mode='strict' nodeset='0'/>" in xml
    assert xml.count("<hostdev mode='subsystem' type='pci' managed='yes'>") == 4


def test_a_changed_spec_is_redefined_and_an_unchanged_one_is_left_alone(conn):
    spec = spec_for()
    assert ensure_defined(conn, spec) == Outcome.CREATED
    assert ensure_defined(conn, spec) == Outcome.ALREADY
    bigger = replace(spec, cells=(replace(spec.cells[0], memory_mib=65536),))
    assert ensure_defined(conn, bigger) == Outcome.REDEFINED
    assert conn.lookupByUUIDString(spec.uuid).maxMemory() == 65536 * 1024
    assert ensure_defined(conn, bigger) == Outcome.ALREADY


def test_running_and_stopping_look_at_the_real_state(conn):
    spec = spec_for()
    ensure_defined(conn, spec)
    domain = conn.lookupByUUIDString(spec.uuid)
    domain.create()
    assert ensure_running(conn, spec.uuid) == Outcome.ALREADY
    domain.suspend()
    assert ensure_running(conn, spec.uuid) == Outcome.RESUMED
    domain.suspend()
    assert ensure_shut_off(conn, spec.uuid) == Outcome.DESTROYED  # a paused guest cannot hear ACPI
    assert domain_state(conn, spec.uuid) == "shut off"
    domain.create()
    assert ensure_absent(conn, spec.uuid) == Outcome.REMOVED  # powered off, then undefined


def test_starting_an_undefined_domain_is_a_permanent_error_naming_it(conn):
    missing = str(uuid.uuid4())
    with pytest.raises(PermanentHypervisorError, match=f"domain {missing} is not defined") as caught:
        ensure_running(conn, missing)
    assert caught.value.code == libvirt.VIR_ERR_NO_DOMAIN
    assert ensure_shut_off(conn, missing) == Outcome.ALREADY
    assert ensure_absent(conn, missing) == Outcome.ALREADY


def test_a_missing_image_or_pool_is_a_permanent_error(conn):
    spec = spec_for()
    with pytest.raises(PermanentHypervisorError, match="image volume 'nope.qcow2' is not in storage pool"):
        ensure_volume(conn, replace(spec.disk, backing_volume="nope.qcow2"))
    with pytest.raises(PermanentHypervisorError, match="storage pool 'elsewhere' does not exist") as caught:
        ensure_volume(conn, replace(spec.disk, pool="elsewhere"))
    assert str(caught.value).startswith(conn.getURI())
    assert spec.disk.volume not in volumes(conn)


def test_a_blank_disk_needs_no_image(conn):
    spec = spec_for()
    assert ensure_volume(conn, replace(spec.disk, backing_volume=None)) == Outcome.CREATED
    assert "<backingStore" not in conn.storagePoolLookupByName(STORAGE_POOL).storageVolLookupByName(
        spec.disk.volume
    ).XMLDesc(0)


def test_managed_domains_are_ours_only_with_their_instance_and_state(conn):
    first, second = spec_for(), spec_for()
    for spec in (first, second):
        ensure_defined(conn, spec)
    ensure_running(conn, second.uuid)
    conn.defineXML(
        "<domain type='kvm'><name>someone-elses</name><memory>1024</memory>"
        "<os><type arch='x86_64'>hvm</type></os></domain>"
    )
    assert list_managed_domains(conn) == [
        ManagedDomain(first.uuid, first.instance_id, "shut off"),
        ManagedDomain(second.uuid, second.instance_id, "running"),
    ]
    managed_uuid, instance_id, state = list_managed_domains(conn)[0]
    assert (managed_uuid, instance_id, state) == (first.uuid, first.instance_id, "shut off")


def test_two_hosts_of_one_profile_never_see_each_others_guests():
    spec = spec_for()
    a, b = connect(profile_uri(RTX6000_2X2, "twin-a")), connect(profile_uri(RTX6000_2X2, "twin-b"))
    ensure_volume(a, spec.disk)
    ensure_defined(a, spec)
    assert [d.uuid for d in list_managed_domains(a)] == [spec.uuid]
    assert list_managed_domains(b) == []
    assert spec.disk.volume not in volumes(b)
    assert connect(profile_uri(RTX6000_2X2, "twin-a")) is a


def test_synthetic_hosts_have_an_image_pool_of_their_own():
    spec = spec_for()
    conn = connect(synthetic_uri("fleet-7"))
    assert ensure_volume(conn, spec.disk) == Outcome.CREATED
    assert ensure_defined(conn, spec) == Outcome.CREATED
    assert ensure_running(conn, spec.uuid) == Outcome.STARTED


def test_a_pci_reset_the_test_driver_cannot_do_is_reported_not_raised(conn):
    assert reset_pci_device(conn, "0000:3b:00.0") == Outcome.UNSUPPORTED
    with pytest.raises(PermanentHypervisorError, match="no PCI device 0000:3b:00.7 on the host"):
        reset_pci_device(conn, "0000:3b:00.7")


def test_test_driver_hosts_prefer_kvm(conn):
    assert preferred_domain_type(conn) == "kvm"


@pytest.mark.parametrize(
    ("step", "call"),
    [
        (Step.VOLUME, lambda conn, spec: ensure_volume(conn, spec.disk)),
        (Step.DEFINE, lambda conn, spec: ensure_defined(conn, spec)),
        (Step.START, lambda conn, spec: ensure_running(conn, spec.uuid)),
        (Step.SHUTDOWN, lambda conn, spec: ensure_shut_off(conn, spec.uuid)),
        (Step.UNDEFINE, lambda conn, spec: ensure_absent(conn, spec.uuid, disk=spec.disk)),
        (Step.LIST, lambda conn, spec: list_managed_domains(conn)),
        (Step.RESET, lambda conn, spec: reset_pci_device(conn, "0000:3b:00.0")),
    ],
)
def test_every_call_fails_where_a_fault_is_armed_and_works_once_it_is_spent(conn, step, call):
    spec = spec_for()
    ensure_volume(conn, spec.disk)
    ensure_defined(conn, spec)
    ensure_running(conn, spec.uuid)
    uri = profile_uri(RTX6000_2X2, "another-host")
    faults.inject(step, uri=uri, times=None)  # armed for another host: no effect here
    faults.inject(step, uri=conn.getURI(), times=2)
    for _ in range(2):
        with pytest.raises(TransientHypervisorError) as caught:
            call(conn, spec)
        assert caught.value.step == step and caught.value.uri == conn.getURI()
    call(conn, spec)
    faults.inject(step, permanent=True, code=libvirt.VIR_ERR_XML_ERROR)
    with pytest.raises(PermanentHypervisorError) as caught:
        call(conn, spec)
    assert caught.value.code == libvirt.VIR_ERR_XML_ERROR
