import xml.etree.ElementTree as ET

from hypervisor.connection import connect
from inventory.models import GpuDevice
from networking.models import Ipv4Address
from provisioning.models import AllocatedCpu, AllocatedGpu, Instance, Job
from provisioning.services import instance_create

ROOT_PASS = "Correct-Horse-42"


def create(*, user, plan, region, image, **kwargs) -> Instance:
    return instance_create(
        account=user.membership.account,
        actor=user,
        plan=plan,
        region=region,
        image=image,
        root_pass=ROOT_PASS,
        **kwargs,
    )


def domain_of(instance: Instance):
    instance.refresh_from_db()
    conn = connect(instance.host.libvirt_uri)
    try:
        return conn.lookupByUUIDString(str(instance.domain_uuid))
    except Exception:  # noqa: BLE001 - absent domain
        return None


def domain_state(instance: Instance) -> str | None:
    domain = domain_of(instance)
    if domain is None:
        return None
    return "running" if domain.isActive() else "shut off"


def hostdev_addresses(instance: Instance) -> set[str]:
    root = ET.fromstring(domain_of(instance).XMLDesc(0))
    addresses = set()
    for source in root.findall("./devices/hostdev/source/address"):
        addresses.add(
            f"{int(source.get('domain'), 16):04x}:{int(source.get('bus'), 16):02x}:"
            f"{int(source.get('slot'), 16):02x}.{int(source.get('function'), 16)}"
        )
    return addresses


def pinned_cpus(instance: Instance) -> dict[int, int]:
    root = ET.fromstring(domain_of(instance).XMLDesc(0))
    return {int(pin.get("vcpu")): int(pin.get("cpuset")) for pin in root.findall("./cputune/vcpupin")}


def active_gpus(instance: Instance) -> list[GpuDevice]:
    return [
        row.gpu
        for row in AllocatedGpu.objects.filter(
            allocation__instance=instance, released_at__isnull=True
        ).select_related("gpu")
    ]


def active_cpu_ids(instance: Instance) -> dict[int, int]:
    rows = AllocatedCpu.objects.filter(
        allocation__instance=instance, released_at__isnull=True
    ).select_related("cpu")
    return {row.vcpu: row.cpu.cpu_id for row in rows}


def last_job(instance: Instance) -> Job:
    return instance.jobs.order_by("-id").first()


def nothing_leaked(instance: Instance) -> bool:
    """No active allocation row of any kind, no address held, and no GPU of the instance stuck outside
    service."""
    return not (
        AllocatedGpu.objects.filter(allocation__instance=instance, released_at__isnull=True).exists()
        or AllocatedCpu.objects.filter(allocation__instance=instance, released_at__isnull=True).exists()
        or instance.allocations.filter(released_at__isnull=True).exists()
        or Ipv4Address.objects.filter(holder=instance).exists()
        or instance.ipv4_assignments.filter(released_at__isnull=True).exists()
    )
