"""Reads: an instance's disks and configuration profile as Linode describes them, from what its domain has.

The domain is built from the instance (provisioning.domain_spec): one boot disk, a qcow2 volume cloned
from the image in the host's pool, attached as virtio `vda` and booted by the firmware from the disk's
own boot loader (Linode's "Direct Disk"), or by a kernel on the host for an image that names one; and
the NoCloud seed, a read-only `cidata` ISO on a virtio-scsi cdrom (`sda` in the guest), that carries the
credentials, the customer's user data and the network configuration. These are the same facts, in
Linode's shapes; nothing here asks libvirt, so the API answers whether or not the host does.

IDs are stable for the life of the instance, through resizes, moves and rebuilds, and never shared
between instances: the boot disk is 2 x the instance id (2 x id + 1 is kept for the NoCloud seed), the
configuration profile has the instance's id.
"""

from dataclasses import dataclass, field
from datetime import datetime

from hypervisor.seed import build_seed_iso
from inventory.models import Image
from provisioning.domain_spec import seed_spec_for
from provisioning.models import Instance
from provisioning.selectors import instance_disk_mib

DEVICE_SLOTS = ("sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg", "sdh")  # Linode's device map keys
DIRECT_DISK = "linode/direct-disk"  # the firmware boots the disk's own boot loader
LABEL_MAX = 48

_NOT_READY = (
    Instance.Status.PROVISIONING,
    Instance.Status.RESIZING,
    Instance.Status.REBUILDING,
)


@dataclass(frozen=True)
class Disk:
    id: int
    label: str
    size: int  # MB (MiB), as Linode counts
    status: str  # ready | not ready | deleting
    filesystem: str  # raw | swap | ext3 | ext4 | initrd
    created: datetime
    updated: datetime
    disk_encryption: str = "disabled"


@dataclass(frozen=True)
class Config:
    id: int
    label: str
    kernel: str
    root_device: str
    devices: dict[str, dict | None]
    created: datetime
    updated: datetime
    comments: str = ""
    initrd: int | None = None
    run_level: str = "default"
    virt_mode: str = "paravirt"  # virtio disk and NIC
    memory_limit: int = 0
    # Linode's boot helpers rewrite files on the disk at boot; gpuadmin does none of that (the guest
    # gets its network and credentials from the NoCloud seed).
    helpers: dict[str, bool] = field(
        default_factory=lambda: {
            "updatedb_disabled": False,
            "distro": False,
            "modules_dep": False,
            "network": False,
            "devtmpfs_automount": False,
        }
    )
    interfaces: list = field(default_factory=list)


SEED_LABEL = "NoCloud seed (cidata)"
MIB = 1024 * 1024


def boot_disk_id(instance_id: int) -> int:
    return 2 * instance_id


def seed_disk_id(instance_id: int) -> int:
    return 2 * instance_id + 1


def has_disks(instance: Instance) -> bool:
    """A failed create removed its volume; a deleted instance has none."""
    return instance.status not in (Instance.Status.FAILED, Instance.Status.DELETED)


def instance_disks(*, instance: Instance) -> list[Disk]:
    if not has_disks(instance):
        return []
    image = instance.image
    return [
        Disk(
            id=boot_disk_id(instance.pk),
            label=_label(f"{image.label} Disk" if image else "Boot Disk"),
            size=instance_disk_mib(instance=instance),
            status=_status(instance),
            filesystem="ext4" if image and image.os_type == Image.OsType.LINUX else "raw",
            created=instance.created,
            updated=instance.updated,
        )
    ] + _seed_disks(instance)


def _seed_disks(instance: Instance) -> list[Disk]:
    seed = seed_spec_for(instance=instance)
    if seed is None:
        return []
    return [
        Disk(
            id=seed_disk_id(instance.pk),
            label=SEED_LABEL,
            size=-(-len(build_seed_iso(seed)) // MIB),
            status=_status(instance),
            filesystem="raw",  # ISO 9660, which Linode has no name for
            created=instance.created,
            updated=instance.updated,
        )
    ]


def instance_disk(*, instance: Instance, disk_id: int) -> Disk | None:
    return next((disk for disk in instance_disks(instance=instance) if disk.id == disk_id), None)


def instance_configs(*, instance: Instance) -> list[Config]:
    disks = instance_disks(instance=instance)
    if not disks:
        return []
    devices: dict[str, dict | None] = dict.fromkeys(DEVICE_SLOTS)
    for slot, disk in zip(DEVICE_SLOTS, disks, strict=False):
        devices[slot] = {"disk_id": disk.id, "volume_id": None}
    image = instance.image
    return [
        Config(
            id=instance.pk,
            label=_label(f"My {image.label} Disk Profile" if image else "My Boot Profile"),
            kernel=image.kernel if image and image.kernel else DIRECT_DISK,
            root_device="/dev/vda",  # the guest's name for it: a virtio disk
            devices=devices,
            created=instance.created,
            updated=instance.updated,
        )
    ]


def instance_config(*, instance: Instance, config_id: int) -> Config | None:
    return next((config for config in instance_configs(instance=instance) if config.id == config_id), None)


def _status(instance: Instance) -> str:
    if instance.status == Instance.Status.DELETING:
        return "deleting"
    return "not ready" if instance.status in _NOT_READY else "ready"


def _label(text: str) -> str:
    return text[:LABEL_MAX].rstrip()
