import shutil
import subprocess
import sys

import libvirt
import pytest

from hypervisor import faults
from hypervisor.discovery import discover, is_discoverable
from hypervisor.errors import DiscoveryError, HypervisorError, TransientHypervisorError
from hypervisor.faults import Step
from hypervisor.profiles import (
    A100_2X4,
    PROFILES_DIR,
    RTX6000_2X2,
    RTX6000_NONUMA,
    STANDARD_2X32,
    profile_names,
    profile_uri,
    synthetic_uri,
)

NVIDIA, ASPEED = 0x10DE, 0x1A03


def nvidia(description):
    return [g for g in description.gpus if g.vendor_id == NVIDIA]


def test_every_profile_ships_a_node_file_and_all_but_synthetic_a_capabilities_file():
    assert set(profile_names()) == {A100_2X4, RTX6000_2X2, RTX6000_NONUMA, STANDARD_2X32, "synthetic"}
    for name in profile_names():
        assert (PROFILES_DIR / name / "capabilities.xml").is_file() == (name != "synthetic")


def test_the_rtx_server_has_two_cards_per_node_each_with_its_four_functions():
    described = discover(profile_uri(RTX6000_2X2, "gpu-a"), hostname="gpu-a")
    assert described.hostname == "gpu-a"
    assert [(c.index, c.memory_mib, len(c.cpus)) for c in described.cells] == [
        (0, 196608, 48),
        (1, 196608, 48),
    ]
    gpus = nvidia(described)
    assert [(g.pci_address, g.numa_node) for g in gpus] == [
        ("0000:3b:00.0", 0),
        ("0000:5e:00.0", 0),
        ("0000:86:00.0", 1),
        ("0000:af:00.0", 1),
    ]
    for gpu in gpus:
        bus = gpu.pci_address[:-1]
        assert gpu.companion_functions == (f"{bus}1", f"{bus}2", f"{bus}3")
        assert gpu.foreign_functions == ()
        assert gpu.product_id == 0x1E30
    assert len({g.iommu_group for g in gpus}) == 4


def test_the_eight_gpu_server_has_four_single_function_cards_per_node():
    described = discover(profile_uri(A100_2X4, "gpu-b"), hostname="gpu-b")
    gpus = nvidia(described)
    assert len(gpus) == 8
    assert [sum(1 for g in gpus if g.numa_node == n) for n in (0, 1)] == [4, 4]
    assert all(g.companion_functions == () and g.product_id == 0x20B5 for g in gpus)
    assert [c.hugepages_1g_total for c in described.cells] == [448, 448]


def test_the_no_numa_server_reports_its_cards_without_a_node():
    gpus = nvidia(discover(profile_uri(RTX6000_NONUMA, "gpu-c"), hostname="gpu-c"))
    assert [g.numa_node for g in gpus] == [None, None]
    assert all(len(g.companion_functions) == 3 for g in gpus)


def test_the_bmc_vga_is_described_too_its_bridge_is_not_foreign():
    described = discover(profile_uri(STANDARD_2X32, "std-a"), hostname="std-a")
    (vga,) = described.gpus
    assert (vga.vendor_id, vga.pci_address, vga.foreign_functions) == (ASPEED, "0000:03:00.0", ())
    assert len(described.cells) == 2 and described.cpu_count == 128


def test_test_driver_uris_without_hardware_are_not_discoverable():
    assert not is_discoverable("test:///default")
    assert not is_discoverable(synthetic_uri("fleet-1"))
    assert is_discoverable(profile_uri(RTX6000_2X2, "x"))
    assert is_discoverable("qemu+ssh://gpu-17.example/system")
    with pytest.raises(DiscoveryError, match="no hardware to discover") as caught:
        discover(synthetic_uri("fleet-1"), hostname="fleet-1")
    assert "fleet-1" in str(caught.value)


def test_a_refused_connection_is_a_transient_error_naming_the_uri():
    with pytest.raises(TransientHypervisorError) as caught:
        discover("qemu+tcp://127.0.0.1:1/system", hostname="down")
    assert str(caught.value).startswith("qemu+tcp://127.0.0.1:1/system: connect failed")
    assert "Connection refused" in str(caught.value)
    assert caught.value.code == libvirt.VIR_ERR_SYSTEM_ERROR


def test_a_missing_node_file_is_a_permanent_error(tmp_path):
    uri = f"test://{tmp_path}/gone/node.xml?host=h"
    (tmp_path / "gone").mkdir()
    (tmp_path / "gone" / "capabilities.xml").write_text("<capabilities/>")
    with pytest.raises(HypervisorError) as caught:
        discover(uri, hostname="h")
    assert not caught.value.transient
    assert caught.value.code == libvirt.VIR_ERR_XML_ERROR


def test_malformed_capabilities_beside_the_node_file_name_the_host(tmp_path):
    shutil.copytree(PROFILES_DIR / RTX6000_2X2, tmp_path / "broken")
    (tmp_path / "broken" / "capabilities.xml").write_text("<capabilities><host><topology>")
    uri = f"test://{tmp_path}/broken/node.xml?host=gpu-9"
    with pytest.raises(DiscoveryError, match="capabilities is not well-formed XML") as caught:
        discover(uri, hostname="gpu-9")
    assert "host=gpu-9" in str(caught.value)


def test_an_injected_fault_fails_discovery_once():
    uri = profile_uri(RTX6000_2X2, "gpu-f")
    faults.inject(Step.DISCOVER, uri=uri)
    with pytest.raises(TransientHypervisorError, match="discover failed: injected transient fault"):
        discover(uri, hostname="gpu-f")
    assert len(discover(uri, hostname="gpu-f").cells) == 2


def test_the_hypervisor_package_imports_no_django():
    code = (
        "import sys, hypervisor.lifecycle, hypervisor.discovery, hypervisor.domain_xml, hypervisor.profiles, "
        "hypervisor.synthetic; sys.exit('django' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
