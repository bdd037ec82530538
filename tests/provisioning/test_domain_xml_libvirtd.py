"""The builder's XML on a real libvirtd with the QEMU driver, for an allocation on this machine's topology.

The machine has no GPU, so the hostdevs are left out; where KVM is unusable the guest runs under TCG.
scripts/start-libvirtd starts libvirtd (CI runs it). Outside CI the test skips when no libvirtd answers;
in CI (CI=true) it fails instead, so a broken daemon cannot pass for a green run.
"""

import os
import xml.etree.ElementTree as ET
from dataclasses import replace

import libvirt
import pytest
from django.test import override_settings

from hypervisor.connection import connect
from hypervisor.domain_xml import METADATA_NS
from hypervisor.errors import HypervisorError, PermanentHypervisorError
from hypervisor.lifecycle import (
    Outcome,
    domain_state,
    ensure_absent,
    ensure_defined,
    ensure_running,
    ensure_shut_off,
    ensure_volume,
    list_managed_domains,
    preferred_domain_type,
)
from hypervisor.spec import NetworkSpec, image_volume_name, mac_for_instance
from inventory.models import HostCpu
from inventory.sync import host_enroll
from provisioning.domain_spec import domain_spec_for
from tests.builders import make_allocation, make_image, make_instance, make_region, make_standard_plan, unique

pytestmark = [pytest.mark.django_db, pytest.mark.libvirtd]

SYSTEM_URI = os.environ.get("GPUADMIN_LIBVIRTD_URI", "qemu:///system")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def conn():
    try:
        return connect(SYSTEM_URI)
    except HypervisorError as exc:
        message = f"no libvirtd answers at {SYSTEM_URI} ({exc}); scripts/start-libvirtd starts one"
        if in_ci():
            pytest.fail(f"CI must run the libvirtd test: {message}")
        pytest.skip(message)


@pytest.fixture
def pool(conn, tmp_path):
    """A transient directory pool holding a small image, standing in for the host's image store."""
    image = make_image()
    name = unique(f"gpuadmin-test-{os.getpid()}")
    pool = conn.storagePoolCreateXML(
        f"<pool type='dir'><name>{name}</name><target><path>{tmp_path}</path></target></pool>", 0
    )
    pool.createXML(
        f"<volume><name>{image_volume_name(image.pk)}</name><capacity unit='MiB'>64</capacity>"
        "<target><format type='qcow2'/></target></volume>",
        0,
    )
    yield name, image
    for volume in pool.listAllVolumes(0):
        volume.delete(0)
    pool.destroy()


# This machine: 1 reserved core per node for the host and emulator, the rest for the guest.
@override_settings(GPUADMIN_RESERVED_CORES_PER_NODE=1, GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE=512)
def test_a_domain_from_the_builder_boots_with_the_pinning_and_memory_policy_asked_for(conn, pool):
    pool_name, image = pool
    host, _ = host_enroll(
        region=make_region(), hostname=unique("libvirtd-local"), libvirt_uri=SYSTEM_URI, kind="gpu"
    )
    node = host.numa_nodes.order_by("index").first()
    free = HostCpu.objects.filter(numa_node=node, reserved=False).count()
    if free == 0:
        pytest.skip(f"this machine's node {node.index} has no CPU left for a guest beside the reserved one")
    instance = make_instance(plan=make_standard_plan(), image=image)
    allocation = make_allocation(
        instance=instance, host=host, gpus=0, vcpus=min(free, 2), memory_mib=256, hugepages=False
    )
    spec = domain_spec_for(
        instance=instance,
        allocation=allocation,
        include_gpus=False,
        network=NetworkSpec("user", "", mac_for_instance(instance.pk)),  # no libvirt network needed
    )
    # No seed here: test_real_guest_libvirtd.py attaches one and reads it from inside the guest.
    spec = replace(spec, disk=replace(spec.disk, pool=pool_name, capacity_mib=128), seed=None)
    wanted_pins = spec.pins
    assert wanted_pins and not set(wanted_pins.values()) & set(spec.emulator_cpus)

    try:
        assert ensure_volume(conn, spec.disk) == Outcome.CREATED
        spec = _boot(conn, spec)
        domain = conn.lookupByUUIDString(spec.uuid)
        cpus = conn.getInfo()[2]

        assert domain_state(conn, spec.uuid) == "running"
        pin_info = domain.vcpuPinInfo(libvirt.VIR_DOMAIN_AFFECT_LIVE)
        assert {v: [c for c in range(cpus) if pin_info[v][c]] for v in wanted_pins} == {
            v: [cpu] for v, cpu in wanted_pins.items()
        }
        # virDomainGetVcpus reads the affinity the vCPU threads really run with.
        _, thread_maps = domain.vcpus()
        assert [[c for c in range(cpus) if m[c]] for m in thread_maps] == [
            [wanted_pins[v]] for v in sorted(wanted_pins)
        ]
        emulator = domain.emulatorPinInfo(libvirt.VIR_DOMAIN_AFFECT_LIVE)
        assert [c for c in range(cpus) if emulator[c]] == sorted(spec.emulator_cpus)
        numa = domain.numaParameters(libvirt.VIR_DOMAIN_AFFECT_LIVE)
        assert numa["numa_mode"] == libvirt.VIR_DOMAIN_NUMATUNE_MEM_STRICT
        assert numa["numa_nodeset"] == str(node.index)

        live = ET.fromstring(domain.XMLDesc(0))
        assert live.get("type") == spec.domain_type
        memnodes = [m.attrib for m in live.findall("numatune/memnode")]
        assert memnodes == [{"cellid": "0", "mode": "strict", "nodeset": str(node.index)}]
        assert [c.get("memory") for c in live.findall("cpu/numa/cell")] == [str(256 * 1024)]
        expander = [c for c in live.findall("devices/controller") if c.get("model") == "pcie-expander-bus"]
        assert [c.findtext("target/node") for c in expander] == ["0"]
        assert live.find(f"metadata/{{{METADATA_NS}}}instance").get("id") == str(instance.pk)
        assert live.findall("devices/hostdev") == []
        assert (spec.uuid, instance.pk, "running") in list_managed_domains(conn)

        assert ensure_running(conn, spec.uuid) == Outcome.ALREADY
        # No OS answers the ACPI button, so this is the timeout-then-destroy path.
        assert ensure_shut_off(conn, spec.uuid, timeout=2) in (Outcome.DESTROYED, Outcome.SHUT_DOWN)
        assert domain_state(conn, spec.uuid) == "shut off"
    finally:
        removed = ensure_absent(conn, spec.uuid, disk=spec.disk)
    assert removed == Outcome.REMOVED
    assert domain_state(conn, spec.uuid) is None
    assert spec.disk.volume not in conn.storagePoolLookupByName(pool_name).listVolumes()


def _boot(conn, spec):
    """Define and start with KVM where this machine's QEMU can use it; otherwise (or if it fails), TCG."""
    kinds = [preferred_domain_type(conn)] + (["qemu"] if preferred_domain_type(conn) == "kvm" else [])
    for kind in kinds:
        spec = replace(spec, domain_type=kind)
        assert ensure_defined(conn, spec) in (Outcome.CREATED, Outcome.REDEFINED)
        try:
            assert ensure_running(conn, spec.uuid) == Outcome.STARTED
            return spec
        except PermanentHypervisorError:
            if kind == kinds[-1]:
                raise
            # /dev/kvm exists but QEMU cannot run this CPU on it (nested sandboxes): fall back to TCG.
            ensure_absent(conn, spec.uuid)
    raise AssertionError("unreachable")
