"""The demo world `make run` starts with: three GPU regions, Linode's RTX 6000 plans, three users.

Hosts are enrolled through discovery from the host profiles in hypervisor/profiles, each with its own
test-driver URI (so each has its own guests).

Everything here is idempotent: running it again changes nothing that is already there.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from waffle.models import Switch

from accounts.flags import GPU_INSTANCES, PROVISIONING_ENABLED
from accounts.models import Account, Membership
from accounts.services import account_create, user_create
from gpuadmin.models import Flag
from hypervisor.profiles import RTX6000_2X2, STANDARD_2X32, profile_uri
from hypervisor.synthetic import RTX_6000, RTX_6000_NAME
from inventory.models import GpuModel, Host, Image, InstanceType, Region
from inventory.sync import host_enroll
from networking.models import Ipv4Pool
from networking.services import pool_create

GIB = 1024

REGIONS = [
    # id, label, country, GPU hosts, standard hosts
    ("us-east", "Newark, NJ", "us", 4, 2),
    ("ap-west", "Mumbai, IN", "in", 4, 2),
    ("ap-south", "Singapore, SG", "sg", 4, 2),
    ("us-central", "Dallas, TX", "us", 0, 2),
]

# One IPv4 pool a region: the documentation ranges (RFC 5737) and one benchmarking block (RFC 2544),
# nobody's real addresses. The first host address is the gateway.
POOLS = {
    "us-east": "198.51.100.0/24",
    "ap-west": "203.0.113.0/24",
    "ap-south": "192.0.2.0/24",
    "us-central": "198.19.255.0/24",
}

GPU_MODELS = [
    # PCI product id, name, short name, VRAM GiB, BAR1 MiB (the guest's 64-bit PCI hole maps it per card)
    (RTX_6000, RTX_6000_NAME, "RTX 6000", 24, 256),
    (0x20B5, "NVIDIA A100 PCIe 80GB", "A100", 80, 128 * GIB),
    (0x2331, "NVIDIA H100 PCIe", "H100", 80, 128 * GIB),
]

GPU_PLANS = [
    # gpus, vcpus, memory GiB, disk GiB, transfer GB, hourly, monthly
    (1, 8, 32, 640, 16000, "1.50", "1000.00"),
    (2, 16, 64, 1280, 20000, "3.00", "2000.00"),
    (3, 20, 96, 1920, 20000, "4.50", "3000.00"),
    (4, 24, 128, 2560, 20000, "6.00", "4000.00"),
]

STANDARD_PLANS = [
    # id, label, vcpus, memory GiB, disk GiB, transfer GB, network out Mbps, hourly, monthly
    ("g6-standard-2", "Linode 4GB", 2, 4, 80, 4000, 4000, "0.036", "24.00"),
    ("g6-standard-4", "Linode 8GB", 4, 8, 160, 5000, 5000, "0.072", "48.00"),
]

IMAGES = [
    # id, label, vendor, os_type, needs_uefi, size MiB
    ("linode/ubuntu22.04", "Ubuntu 22.04 LTS", "Ubuntu", "linux", False, 2500),
    ("linode/ubuntu24.04", "Ubuntu 24.04 LTS", "Ubuntu", "linux", False, 2800),
    ("linode/debian12", "Debian 12", "Debian", "linux", False, 1800),
    ("gpuadmin/windows-server-2022", "Windows Server 2022", "Microsoft", "windows", True, 20480),
]


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    account: str
    role: str


DEMO_LOGINS = [
    DemoLogin("admin", "gpuadmin-admin", "gpuadmin operations", "superuser (staff, admin site)"),
    DemoLogin("alice", "gpuadmin-alice", "gpuadmin employees", "employee account: sees GPU plans"),
    DemoLogin("bob", "gpuadmin-bob", "Bob's Render Farm", "customer account: GPU plans hidden until launch"),
]


def ensure_default_flags() -> None:
    """The flag and switch the migrations create, for databases that were flushed since."""
    Flag.objects.get_or_create(
        name=GPU_INSTANCES,
        defaults={
            "employee_accounts": True,
            "note": "GPU plans. Dark launch: employees. Launch: Everyone = Yes.",
        },
    )
    Switch.objects.get_or_create(
        name=PROVISIONING_ENABLED,
        defaults={"active": True, "note": "Kill switch for new creates and queued tasks."},
    )


def seed_demo() -> dict[str, int]:
    """Create what is missing and return how many rows of each kind were created."""
    created = {"regions": 0, "pools": 0, "plans": 0, "images": 0, "hosts": 0, "accounts": 0, "users": 0}
    with transaction.atomic():
        ensure_default_flags()
        for product_id, name, short_name, vram_gib, bar_mib in GPU_MODELS:
            GpuModel.objects.get_or_create(
                vendor_id=0x10DE,
                product_id=product_id,
                defaults={
                    "name": name,
                    "short_name": short_name,
                    "vram_mib": vram_gib * GIB,
                    "bar_mib": bar_mib,
                },
            )
        rtx = GpuModel.objects.get(vendor_id=0x10DE, product_id=RTX_6000)
        for gpus, vcpus, memory, disk, transfer, hourly, monthly in GPU_PLANS:
            _, was_created = InstanceType.objects.get_or_create(
                id=f"g1-gpu-rtx6000-{gpus}",
                defaults={
                    "label": f"Dedicated {memory}GB + RTX6000 GPU x{gpus}",
                    "type_class": InstanceType.TypeClass.GPU,
                    "gpus": gpus,
                    "gpu_model": rtx,
                    "vcpus": vcpus,
                    "memory_mib": memory * GIB,
                    "disk_mib": disk * GIB,
                    "transfer_gb": transfer,
                    "network_out_mbps": 10000,
                    "price_hourly": Decimal(hourly),
                    "price_monthly": Decimal(monthly),
                },
            )
            created["plans"] += was_created
        for plan_id, label, vcpus, memory, disk, transfer, network_out, hourly, monthly in STANDARD_PLANS:
            _, was_created = InstanceType.objects.get_or_create(
                id=plan_id,
                defaults={
                    "label": label,
                    "type_class": InstanceType.TypeClass.STANDARD,
                    "vcpus": vcpus,
                    "memory_mib": memory * GIB,
                    "disk_mib": disk * GIB,
                    "transfer_gb": transfer,
                    "network_out_mbps": network_out,
                    "price_hourly": Decimal(hourly),
                    "price_monthly": Decimal(monthly),
                },
            )
            created["plans"] += was_created
        for image_id, label, vendor, os_type, needs_uefi, size in IMAGES:
            _, was_created = Image.objects.get_or_create(
                id=image_id,
                defaults={
                    "label": label,
                    "vendor": vendor,
                    "os_type": os_type,
                    "needs_uefi": needs_uefi,
                    "size_mib": size,
                },
            )
            created["images"] += was_created
        for region_id, label, country, gpu_hosts, standard_hosts in REGIONS:
            region, was_created = Region.objects.get_or_create(
                id=region_id, defaults={"label": label, "country": country}
            )
            created["regions"] += was_created
            if not Ipv4Pool.objects.filter(region=region).exists():
                pool_create(region=region, network=POOLS[region_id])
                created["pools"] += 1
            for number in range(1, gpu_hosts + 1):
                hostname = f"{region_id}-gpu-{number:02d}"
                if not Host.objects.filter(hostname=hostname).exists():
                    host_enroll(
                        region=region,
                        hostname=hostname,
                        libvirt_uri=profile_uri(RTX6000_2X2, hostname),
                        kind=Host.Kind.GPU,
                        profile=RTX6000_2X2,
                    )
                    created["hosts"] += 1
            for number in range(1, standard_hosts + 1):
                hostname = f"{region_id}-std-{number:02d}"
                if not Host.objects.filter(hostname=hostname).exists():
                    host_enroll(
                        region=region,
                        hostname=hostname,
                        libvirt_uri=profile_uri(STANDARD_2X32, hostname),
                        kind=Host.Kind.STANDARD,
                        profile=STANDARD_2X32,
                    )
                    created["hosts"] += 1
        _seed_people(created)
    return created


def _seed_people(created: dict[str, int]) -> None:
    User = get_user_model()
    kinds = {
        "admin": Account.Kind.INTERNAL,
        "alice": Account.Kind.EMPLOYEE,
        "bob": Account.Kind.CUSTOMER,
    }
    for login in DEMO_LOGINS:
        account = Account.objects.filter(name=login.account).first()
        if account is None:
            account = account_create(
                name=login.account, email=f"{login.username}@example.com", kind=kinds[login.username]
            )
            created["accounts"] += 1
        if not User.objects.filter(username=login.username).exists():
            user = user_create(
                username=login.username,
                email=f"{login.username}@example.com",
                password=login.password,
                account=account,
                role=Membership.Role.OWNER,
            )
            if login.username == "admin":
                user.is_staff = user.is_superuser = True
                user.save(update_fields=["is_staff", "is_superuser"])
            created["users"] += 1
        if login.username == "alice":
            flag = Flag.objects.get(name=GPU_INSTANCES)
            flag.accounts.add(account)
