"""A real guest on the real libvirtd + QEMU: created through the service, it reads its NoCloud seed and
says on its serial console what it got, and the test holds every line against the instance and its
allocation.

The guest is Debian's cloud kernel (`linux-image-cloud-amd64`: virtio, virtio-scsi, the SCSI cdrom and
ISO 9660 are modules there, and it has no AHCI driver, which is why the seed is a virtio-scsi cdrom)
booted straight from an Image that names it, with an initramfs built here from `busybox-static` and
those modules. Its /init mounts the seed (/dev/sr0), sets the hostname from meta-data, configures the
NIC the network-config names by MAC with the address the instance holds in its region's pool, prints
what it found and powers off. The NIC joins the host's bridge (one made here, with no uplink) through
libvirt's clean-traffic filter on that address, as every guest's does. One boot, under TCG where
KVM is unusable: a few seconds of guest time. The test runs it under TCG (GPUADMIN_DOMAIN_TYPE=qemu):
/dev/kvm in a CI sandbox may exist and still refuse the guest's CPU.

This machine has one NUMA node and two CPUs; the host row stands in for a two-node host (one CPU and
half the memory per node), so a 2-vCPU plan splits over both nodes and the guest gets two NUMA cells
with an expander bus each. GPUADMIN_BIND_GUEST_MEMORY is off for that reason only: there is no host
node 1 to bind cell 1's memory to. The vCPU pins are real.

.ci/run installs the packages (scripts/ensure-system-packages --ci) and starts libvirtd
(scripts/start-libvirtd). Outside CI the test skips, saying why, when no libvirtd answers or the packages
are missing; in CI (CI=true) it fails instead.
"""

import glob
import os
import re
import shutil
import stat
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from accounts.models import Account
from hypervisor.connection import connect
from hypervisor.description import HostDescription, NumaCellDescription
from hypervisor.discovery import discover
from hypervisor.errors import HypervisorError
from hypervisor.spec import image_volume_name, seed_volume_prefix
from inventory.models import Host, Image, InstanceType
from inventory.services import host_create
from networking.models import Ipv4Address
from provisioning.cloudinit import authorized_keys_of
from provisioning.models import Allocation, Instance, Job
from provisioning.services import instance_create, instance_delete
from tests.builders import make_account, make_region, make_user, unique

pytestmark = [pytest.mark.django_db, pytest.mark.libvirtd]

SYSTEM_URI = os.environ.get("GPUADMIN_LIBVIRTD_URI", "qemu:///system")
ROOT_PASS = "Guest-Horse-42"
KEYS = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDL8b2Q7x2Y0nH5jH9rS6q0tZ2s5a6d7e8f9g0h1i2j3 alice@laptop",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGr1x0p9m8n7b6v5c4x3z2l1k0j9h8g7f6d5s4a3q2w1 bob@desk",
]
BOOT_SECONDS = 120  # the bound: a boot takes ~5 s of guest time, more on a loaded 2-core machine
CELL_MEMORY_MIB = 512

# Loaded in this order by hand (the guest has no modprobe data): virtio_ring before virtio, and so on.
MODULES = [
    "drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev", "drivers/virtio/virtio_pci", "net/core/failover",
    "drivers/net/net_failover", "drivers/net/virtio_net", "drivers/scsi/scsi_common",
    "drivers/scsi/scsi_mod", "drivers/scsi/virtio_scsi", "drivers/cdrom/cdrom", "drivers/scsi/sr_mod",
    "fs/isofs/isofs",
]  # fmt: skip

INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /seed /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules); do insmod /lib/modules/$m.ko || echo "GPUADMIN error=insmod-$m"; done
i=0; while [ ! -b /dev/sr0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mount -t iso9660 -o ro /dev/sr0 /seed || echo "GPUADMIN error=mount"
# The volume identifier of the ISO's primary volume descriptor (sector 16, byte 40, 32 bytes).
echo "GPUADMIN label=$(dd if=/dev/sr0 bs=1 skip=32808 count=32 2>/dev/null | tr -d ' ')"
hostname "$(sed -n 's/^local-hostname: "\(.*\)"$/\1/p' /seed/meta-data)"
echo "GPUADMIN hostname=$(hostname)"
echo "GPUADMIN instance_id=$(sed -n 's/^instance-id: "\(.*\)"$/\1/p' /seed/meta-data)"
for h in $(grep -o '\$6\$[^"]*' /seed/user-data); do echo "GPUADMIN root_hash=$h"; done
grep -o '"ssh-[^"]*"' /seed/user-data | tr -d '"' | while read -r key; do echo "GPUADMIN ssh_key=$key"; done
mac=$(sed -n 's/^ *macaddress: "\(.*\)"$/\1/p' /seed/network-config)
address=$(sed -n 's/^ *addresses: \["\(.*\)"\]$/\1/p' /seed/network-config)
gateway=$(sed -n 's/^ *via: "\(.*\)"$/\1/p' /seed/network-config)
nic=""
for n in /sys/class/net/*; do [ "$(cat $n/address)" = "$mac" ] && nic=${n##*/}; done
echo "GPUADMIN nic=$nic mac=$mac"
if [ -n "$nic" ]; then
  ip link set "$nic" up
  if [ -n "$address" ]; then
    ip addr add "$address" dev "$nic"
    [ -n "$gateway" ] && ip route add default via "$gateway" dev "$nic"
  elif grep -q 'dhcp4: true' /seed/network-config; then
    echo "GPUADMIN dhcp4=true"
  fi
  echo "GPUADMIN ipv4=$(ip -4 -o addr show dev "$nic" | sed -n 's/.* inet \([^ ]*\) .*/\1/p')"
  echo "GPUADMIN gateway=$(ip route show default | sed -n 's/^default via \([^ ]*\).*/\1/p')"
fi
echo "GPUADMIN vcpus=$(grep -c ^processor /proc/cpuinfo)"
for n in /sys/devices/system/node/node[0-9]*; do
  kb=$(sed -n 's/.*MemTotal: *\([0-9]*\) kB/\1/p' $n/meminfo)
  echo "GPUADMIN node=${n##*node} cpus=$(cat $n/cpulist) mem_kb=$kb"
done
for d in /sys/bus/pci/devices/*; do
  echo "GPUADMIN pci=${d##*/} class=$(cat $d/class) numa_node=$(cat $d/numa_node)"
done
echo "GPUADMIN done"
sync
poweroff -f
"""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str):
    if in_ci():
        pytest.fail(f"CI must run the real-guest test: {message}")
    pytest.skip(message)


@pytest.fixture
def conn():
    try:
        return connect(SYSTEM_URI)
    except HypervisorError as exc:
        unavailable(f"no libvirtd answers at {SYSTEM_URI} ({exc}); scripts/start-libvirtd starts one")


@pytest.fixture
def guest_os(tmp_path):
    """Debian's cloud kernel and an initramfs of busybox-static, its modules and the /init above."""
    kernels = sorted(glob.glob("/boot/vmlinuz-*-cloud-amd64"))
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not kernels or not os.path.exists(busybox):
        unavailable(
            "linux-image-cloud-amd64 and busybox-static are not installed (ensure-system-packages --ci)"
        )
    kernel = kernels[-1]
    release = kernel.removeprefix("/boot/vmlinuz-")
    modules = Path("/lib/modules") / release / "kernel"
    files = {"init": (INIT.encode(), 0o755), "bin/busybox": (Path(busybox).read_bytes(), 0o755)}
    files["modules"] = ("\n".join(MODULES).encode() + b"\n", 0o644)
    for module in MODULES:
        files[f"lib/modules/{module}.ko"] = ((modules / f"{module}.ko").read_bytes(), 0o644)
    initrd = tmp_path / "initrd.cpio"
    initrd.write_bytes(newc_archive(files))
    return kernel, str(initrd)


def newc_archive(files: dict[str, tuple[bytes, int]]) -> bytes:
    """A cpio archive in the kernel's initramfs format (SVR4 "newc"), directories made on the way."""
    entries: dict[str, tuple[bytes, int]] = {}
    for path, content in files.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            entries.setdefault("/".join(parts[:depth]), (b"", stat.S_IFDIR | 0o755))
        entries[path] = (content[0], stat.S_IFREG | content[1])
    out = bytearray()
    for inode, (name, (data, mode)) in enumerate([*entries.items(), ("TRAILER!!!", (b"", 0))], start=1):
        encoded = name.encode() + b"\0"
        fields = [inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        out += b"070701" + b"".join(f"{value:08x}".encode() for value in fields) + encoded
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


@pytest.fixture
def pool(conn, tmp_path):
    name = unique(f"gpuadmin-guest-{os.getpid()}")
    path = tmp_path / "pool"
    path.mkdir()
    pool = conn.storagePoolCreateXML(
        f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>", 0
    )
    yield name, pool
    for volume in pool.listAllVolumes(0):
        volume.delete(0)
    pool.destroy()


@pytest.fixture
def bridge():
    """The bridge the host's guests join (Host.bridge): made here, with no uplink, so nothing the guest
    sends leaves this machine. Left in place for the next run."""
    name = "gpuadmguest0"
    if not os.path.exists(f"/sys/class/net/{name}"):
        made = subprocess.run(
            ["ip", "link", "add", name, "type", "bridge"], capture_output=True, text=True, check=False
        )
        if made.returncode != 0 and not os.path.exists(f"/sys/class/net/{name}"):
            unavailable(f"cannot make the guest bridge {name}: {made.stderr.strip()}")
    subprocess.run(["ip", "link", "set", name, "up"], check=True)
    return name


def stand_in_for_two_nodes(hostname: str) -> HostDescription:
    """This machine as a two-node host: its CPUs dealt out over two cells, its memory halved."""
    found = discover(SYSTEM_URI, hostname=hostname)
    cpus = sorted((cpu for cell in found.cells for cpu in cell.cpus), key=lambda cpu: cpu.cpu_id)
    if len(cpus) < 2:
        unavailable(f"this machine has {len(cpus)} CPU; a two-cell guest needs two")
    memory = sum(cell.memory_mib for cell in found.cells) // 2
    halves = (cpus[: len(cpus) // 2], cpus[len(cpus) // 2 :])
    return HostDescription(
        hostname=hostname,
        cells=tuple(
            NumaCellDescription(index=index, memory_mib=memory, cpus=tuple(half))
            for index, half in enumerate(halves)
        ),
    )


def console_lines(path: Path) -> dict[str, list[str]]:
    said: dict[str, list[str]] = {}
    text = path.read_text(errors="replace") if path.exists() else ""
    for line in text.splitlines():
        match = re.search(r"GPUADMIN (\w+)(?:=(.*))?$", line.strip())
        if match:
            said.setdefault(match[1], []).append((match[2] or "").strip())
    return said


def test_a_guest_created_through_the_service_reads_its_seed_and_gets_its_allocation(
    conn, guest_os, pool, bridge, tmp_path, settings, django_capture_on_commit_callbacks
):
    kernel, initrd = guest_os
    pool_name, libvirt_pool = pool
    console_dir = tmp_path / "console"
    console_dir.mkdir()
    # All through the one `settings` fixture: it puts them back in order after the test.
    settings.GPUADMIN_CONSOLE_LOG_DIR = str(console_dir)
    settings.GPUADMIN_RESERVED_CORES_PER_NODE = 0  # two CPUs: both are the guest's
    settings.GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE = 256
    settings.GPUADMIN_BIND_GUEST_MEMORY = False  # no host node 1 to bind cell 1's memory to
    settings.GPUADMIN_DOMAIN_TYPE = "qemu"  # TCG: this machine's /dev/kvm exists but refuses the guest's CPU
    region = make_region()
    hostname = unique("guest-host")
    host = host_create(
        region=region,
        hostname=hostname,
        libvirt_uri=SYSTEM_URI,
        kind=Host.Kind.STANDARD,
        description=stand_in_for_two_nodes(hostname),
        simulated=False,
    )
    Host.objects.filter(pk=host.pk).update(storage_pool=pool_name, bridge=bridge)
    image = Image.objects.create(
        id="linode/debian12-cloud-kernel",
        label="Debian 12 (cloud kernel)",
        size_mib=64,
        kernel=kernel,
        initrd=initrd,
        kernel_cmdline="console=ttyS0 rdinit=/init panic=0 loglevel=3",
    )
    libvirt_pool.createXML(
        f"<volume><name>{image_volume_name(image.pk)}</name><capacity unit='MiB'>64</capacity>"
        "<target><format type='qcow2'/></target></volume>",
        0,
    )
    plan = InstanceType.objects.create(
        id="g6-standard-guest",
        label="Guest test 1GB",
        type_class=InstanceType.TypeClass.STANDARD,
        vcpus=2,
        memory_mib=2 * CELL_MEMORY_MIB,
        disk_mib=1024,
        transfer_gb=1,
        # No <bandwidth>: this sandbox's kernel cannot load tc's police action (the XML test covers it).
        network_out_mbps=0,
        price_hourly="0.01",
        price_monthly="5.00",
    )
    user = make_user(account=make_account(kind=Account.Kind.CUSTOMER))

    with django_capture_on_commit_callbacks(execute=True):
        instance = instance_create(
            account=user.membership.account,
            actor=user,
            plan=plan,
            region=region,
            image=image,
            label="real-guest-1",
            root_pass=ROOT_PASS,
            authorized_keys=KEYS,
        )
    instance.refresh_from_db()
    job = instance.jobs.get(action=Job.Action.CREATE)
    try:
        assert job.status == Job.Status.FINISHED, job.error
        assert "seed" not in job.params.get("simulated_steps", [])  # uploaded through a real stream
        (seed_volume,) = [
            v for v in libvirt_pool.listVolumes() if v.startswith(seed_volume_prefix(instance.pk))
        ]
        domain = conn.lookupByUUIDString(str(instance.domain_uuid))
        deadline = time.monotonic() + BOOT_SECONDS
        log = console_dir / f"gpuadmin-{instance.pk}-console.log"
        while domain.isActive() and time.monotonic() < deadline:
            if "done" in console_lines(log):
                break
            time.sleep(0.5)
        said = console_lines(log)
        console = log.read_text(errors="replace") if log.exists() else "(no console log)"
        assert "done" in said, f"the guest did not finish within {BOOT_SECONDS} s:\n{console}"
        xml = ET.fromstring(domain.XMLDesc(0))
    finally:
        with django_capture_on_commit_callbacks(execute=True):
            instance_delete(instance=instance, actor=user)

    allocation = Allocation.objects.get(instance=instance)
    assert "error" not in said, said["error"]
    assert said["label"] == ["cidata"]
    assert said["hostname"] == [instance.label]
    assert said["instance_id"] == [f"gpuadmin-{instance.pk}"]
    stored_hash = re.search(r'"(\$6\$[^"]+)"', instance.cloud_init_user_data)[1]
    assert said["root_hash"] == [stored_hash] and ROOT_PASS not in log.read_text()
    assert said["ssh_key"] == authorized_keys_of(instance.cloud_init_user_data) == KEYS
    mac = xml.find("devices/interface/mac").get("address")
    assert said["nic"] == [f"eth0 mac={mac}"]
    # The address the instance held in its region's pool (released by the delete now, into its
    # cool-down), with the pool's prefix and gateway, as the guest configured them.
    held = Ipv4Address.objects.select_related("pool").get(address=instance.ipv4[0])
    assert said["ipv4"] == [f"{held.address}/{held.pool.prefix_length}"]
    assert said["gateway"] == [held.pool.gateway]

    assert said["vcpus"] == [str(plan.vcpus)] == [str(allocation.cpus.count())]
    # One guest NUMA cell per host node of the allocation, with its vCPUs and (about) its memory.
    cells = sorted(allocation.memory.select_related("numa_node"), key=lambda row: row.numa_node.index)
    assert len(cells) == 2
    nodes = [re.match(r"(\d+) cpus=(\S+) mem_kb=(\d+)", line).groups() for line in said["node"]]
    vcpus_by_node = {}
    for row in allocation.cpus.select_related("cpu__numa_node"):
        vcpus_by_node.setdefault(row.cpu.numa_node.index, []).append(row.vcpu)
    assert [(n, c) for n, c, _ in nodes] == [
        (str(cell), ",".join(map(str, sorted(vcpus_by_node[row.numa_node.index]))))
        for cell, row in enumerate(cells)
    ]
    for (_, _, mem_kb), row in zip(nodes, cells, strict=True):
        # The kernel keeps some of each node for itself: MemTotal is a little under the cell's memory.
        assert 0.8 * row.memory_mib * 1024 <= int(mem_kb) <= row.memory_mib * 1024
    # Each expander bus, seen through the root port behind it, on its cell's NUMA node.
    expanders = [c for c in xml.findall("devices/controller") if c.get("model") == "pcie-expander-bus"]
    seen = dict(re.match(r"(\S+) class=\S+ numa_node=(-?\d+)", line).groups() for line in said["pci"])
    wanted = {
        f"0000:{int(c.find('target').get('busNr')):02x}:00.0": c.findtext("target/node") for c in expanders
    }
    assert len(wanted) == 2
    assert {address: seen.get(address) for address in wanted} == wanted

    instance.refresh_from_db()
    assert instance.status == Instance.Status.DELETED
    assert seed_volume not in libvirt_pool.listVolumes()
    assert not [v for v in libvirt_pool.listVolumes() if v.startswith(seed_volume_prefix(instance.pk))]
