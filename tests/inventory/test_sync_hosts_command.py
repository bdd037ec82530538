import shutil
import xml.etree.ElementTree as ET
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from hypervisor.connection import default_pool
from hypervisor.profiles import PROFILES_DIR, RTX6000_2X2
from inventory.models import GpuDevice, Host
from tests.builders import make_gpu_host, make_profile_host

pytestmark = pytest.mark.django_db


def sync_hosts(*args: str, verbosity: int = 1) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sync_hosts", *args, stdout=out, stderr=err, verbosity=verbosity)
    return out.getvalue(), err.getvalue()


def test_it_prints_what_changed_per_host_and_unchanged_hosts_as_such(tmp_path):
    shutil.copytree(PROFILES_DIR / RTX6000_2X2, tmp_path / "copy")
    changing = make_profile_host(RTX6000_2X2, hostname="gpu-changing", uri=f"test://{tmp_path}/copy/node.xml")
    steady = make_profile_host(RTX6000_2X2, hostname="gpu-steady")
    path = tmp_path / "copy" / "node.xml"
    tree = ET.parse(path)
    root = tree.getroot()
    root.remove(next(d for d in root.findall("device") if d.findtext("name") == "pci_0000_af_00_0"))
    tree.write(path)
    default_pool.discard(changing.libvirt_uri)  # the test driver reads its node file at connect
    out, err = sync_hosts(changing.hostname, steady.hostname)
    assert out.splitlines() == [
        "gpu-changing: 1 change",
        "  GPU 0000:af:00.0: vanished while free; removed",
        "gpu-steady: unchanged",
    ]
    assert err == ""
    assert GpuDevice.objects.get(host=changing, pci_address="0000:af:00.0").state == "removed"


def test_a_failed_host_makes_it_exit_non_zero_after_syncing_the_others():
    good = make_profile_host(RTX6000_2X2, hostname="gpu-good")
    bad = make_profile_host(RTX6000_2X2, hostname="gpu-bad")
    Host.objects.filter(pk=bad.pk).update(libvirt_uri="qemu+tcp://127.0.0.1:1/system", simulated=False)
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 host\\(s\\) not synced"):
        call_command("sync_hosts", "gpu-bad", "gpu-good", "gpu-nowhere", stdout=out, stderr=err)
    assert out.getvalue() == "gpu-good: unchanged\n"
    assert "gpu-nowhere: no such host" in err.getvalue()
    assert "gpu-bad: qemu+tcp://127.0.0.1:1/system: connect failed" in err.getvalue()
    good.refresh_from_db()
    assert good.last_synced_at is not None


def test_without_names_every_discoverable_host_is_synced_and_synthetic_ones_skipped():
    profile_host = make_profile_host(RTX6000_2X2, hostname="gpu-real")
    synthetic = make_gpu_host(hostname="gpu-synthetic")
    out, _ = sync_hosts(verbosity=2)
    assert "gpu-real: unchanged" in out
    assert "  ignored 0000:03:00.0 ASPEED Graphics Family: not a GPU model we sell" in out
    assert "gpu-synthetic: skipped, nothing to discover" in out
    synthetic.refresh_from_db()
    assert synthetic.last_synced_at is None and synthetic.gpus.count() == 4
    profile_host.refresh_from_db()
    assert profile_host.last_synced_at is not None


def test_a_sync_that_changed_hosts_gathers_the_claims_planner_statistics_once(tmp_path, monkeypatch):
    from inventory.management.commands import sync_hosts as command

    analysed: list[int] = []
    monkeypatch.setattr(command, "inventory_statistics_refresh", lambda: analysed.append(1))
    steady = make_profile_host(RTX6000_2X2, hostname="gpu-steady")
    sync_hosts(steady.hostname)
    assert analysed == []  # nothing changed: nothing to analyse
    shutil.copytree(PROFILES_DIR / RTX6000_2X2, tmp_path / "copy")
    first = make_profile_host(RTX6000_2X2, hostname="gpu-first", uri=f"test://{tmp_path}/copy/node.xml")
    second = make_profile_host(RTX6000_2X2, hostname="gpu-second", uri=f"test://{tmp_path}/copy/node.xml")
    path = tmp_path / "copy" / "node.xml"
    tree = ET.parse(path)
    root = tree.getroot()
    root.remove(next(d for d in root.findall("device") if d.findtext("name") == "pci_0000_af_00_0"))
    tree.write(path)
    default_pool.discard(first.libvirt_uri)
    out, _ = sync_hosts(first.hostname, second.hostname, steady.hostname)
    assert out.count(": 1 change") == 2
    assert analysed == [1]  # once for the whole run, after the last host
