"""Small builders for test data: each says in its arguments what the test depends on."""

import ipaddress
import itertools
from decimal import Decimal

from django.contrib.auth import get_user_model

from accounts.models import Account, Membership
from accounts.services import account_create, user_create
from hypervisor.profiles import STANDARD_2X32, profile_uri, synthetic_uri
from hypervisor.synthetic import RTX_6000, RTX_6000_NAME, dual_socket_gpu_host, standard_host
from inventory.counters import active_allocation_exists, numa_counters_recount
from inventory.models import GpuDevice, GpuModel, Host, HostCpu, Image, InstanceType, Region
from inventory.services import host_create
from inventory.sync import host_enroll
from networking.models import Ipv4Pool
from networking.services import pool_create
from provisioning.models import AllocatedCpu, AllocatedGpu, AllocatedMemory, Allocation, Instance

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def make_region(
    region_id: str = "us-east", label: str = "Newark, NJ", country: str = "us", *, pool: bool = True
) -> Region:
    """A region; with `pool`, it gets a default IPv4 pool (a /24 of the benchmarking range) if it has
    none, so instances created there get addresses. Production regions get pools from staff."""
    region, _ = Region.objects.get_or_create(id=region_id, defaults={"label": label, "country": country})
    if pool and not Ipv4Pool.objects.filter(region=region).exists():
        make_pool(region=region)
    return region


# Test pools come from 198.18.0.0/15 (RFC 2544, benchmarking): 512 /24s that are nobody's addresses.
TEST_POOL_RANGE = ipaddress.IPv4Network("198.18.0.0/15")


def make_pool(
    *, region: Region, network: str | None = None, prefix_length: int = 24, reserved: str = ""
) -> Ipv4Pool:
    """A pool of `region`: `network` ("203.0.113.0/24"), or the next free block of the test range."""
    if network is None:
        taken = [pool.ip_network() for pool in Ipv4Pool.objects.all()]
        network = str(
            next(
                block
                for block in TEST_POOL_RANGE.subnets(new_prefix=prefix_length)
                if not any(block.overlaps(other) for other in taken)
            )
        )
    return pool_create(region=region, network=network, reserved=reserved)


def make_gpu_model(
    product_id: int = RTX_6000, name: str = RTX_6000_NAME, short_name: str = "RTX 6000"
) -> GpuModel:
    model, _ = GpuModel.objects.get_or_create(
        vendor_id=0x10DE,
        product_id=product_id,
        defaults={"name": name, "short_name": short_name, "vram_mib": 24576},
    )
    return model


def make_gpu_host(
    *,
    region: Region | None = None,
    hostname: str | None = None,
    numa_nodes: int = 2,
    gpus_per_node: int = 2,
    cores_per_node: int = 24,
    memory_gib_per_node: int = 192,
    gpu_model: GpuModel | None = None,
    state: str = Host.State.ENABLED,
) -> Host:
    region = region or make_region()
    gpu_model = gpu_model or make_gpu_model()
    hostname = hostname or unique(f"{region.id}-gpu")
    description = dual_socket_gpu_host(
        hostname,
        numa_nodes=numa_nodes,
        gpus_per_node=gpus_per_node,
        cores_per_node=cores_per_node,
        memory_mib_per_node=memory_gib_per_node * 1024,
        product_id=gpu_model.product_id,
        product_name=gpu_model.name,
    )
    host = host_create(
        region=region,
        hostname=hostname,
        libvirt_uri=synthetic_uri(hostname),
        kind=Host.Kind.GPU,
        description=description,
    )
    if state != Host.State.ENABLED:
        Host.objects.filter(pk=host.pk).update(state=state)
        host.refresh_from_db()
    return host


def make_standard_host(*, region: Region | None = None, hostname: str | None = None) -> Host:
    region = region or make_region()
    hostname = hostname or unique(f"{region.id}-std")
    return host_create(
        region=region,
        hostname=hostname,
        libvirt_uri=synthetic_uri(hostname),
        kind=Host.Kind.STANDARD,
        description=standard_host(hostname),
    )


def make_gpu_plan(gpus: int = 1, *, gpu_model: GpuModel | None = None) -> InstanceType:
    """Linode's RTX 6000 plans: 1/2/3/4 GPUs with 8/16/20/24 vCPUs and 32 GiB RAM a GPU."""
    gpu_model = gpu_model or make_gpu_model()
    vcpus = {1: 8, 2: 16, 3: 20, 4: 24}.get(gpus, 6 * gpus)
    plan, _ = InstanceType.objects.get_or_create(
        id=f"g1-gpu-{gpu_model.short_name.lower().replace(' ', '')}-{gpus}",
        defaults={
            "label": f"Dedicated {32 * gpus}GB + {gpu_model.short_name} GPU x{gpus}",
            "type_class": InstanceType.TypeClass.GPU,
            "gpus": gpus,
            "gpu_model": gpu_model,
            "vcpus": vcpus,
            "memory_mib": 32 * 1024 * gpus,
            "disk_mib": 640 * 1024 * gpus,
            "transfer_gb": 16000 if gpus == 1 else 20000,
            "network_out_mbps": 10000,
            "price_hourly": Decimal("1.50") * gpus,
            "price_monthly": Decimal("1000.00") * gpus,
        },
    )
    return plan


def make_standard_plan(vcpus: int = 2) -> InstanceType:
    plan, _ = InstanceType.objects.get_or_create(
        id=f"g6-standard-{vcpus}",
        defaults={
            "label": f"Linode {2 * vcpus}GB",
            "type_class": InstanceType.TypeClass.STANDARD,
            "vcpus": vcpus,
            "memory_mib": 2048 * vcpus,
            "disk_mib": 40960 * vcpus,
            "transfer_gb": 2000 * vcpus,
            "network_out_mbps": 2000 * vcpus,
            "price_hourly": Decimal("0.018") * vcpus,
            "price_monthly": Decimal("12.00") * vcpus,
        },
    )
    return plan


def make_image(image_id: str = "linode/ubuntu22.04", *, windows: bool = False) -> Image:
    image, _ = Image.objects.get_or_create(
        id=image_id,
        defaults={
            "label": image_id.split("/")[-1],
            "os_type": Image.OsType.WINDOWS if windows else Image.OsType.LINUX,
            "needs_uefi": windows,
            "size_mib": 2500,
        },
    )
    return image


def make_account(*, kind: str = Account.Kind.CUSTOMER, name: str | None = None) -> Account:
    name = name or unique(f"{kind}-account")
    return account_create(name=name, email=f"{name}@example.com", kind=kind)


def make_user(*, account: Account | None = None, username: str | None = None, staff: bool = False):
    account = account or make_account()
    username = username or unique("user")
    user = user_create(
        username=username,
        email=f"{username}@example.com",
        password="pw-" + username,
        account=account,
        role=Membership.Role.OWNER,
    )
    if staff:
        get_user_model().objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
        user.refresh_from_db()
    return user


A100_PRODUCT_ID = 0x20B5


def make_a100_model() -> GpuModel:
    model, _ = GpuModel.objects.get_or_create(
        vendor_id=0x10DE,
        product_id=A100_PRODUCT_ID,
        defaults={
            "name": "NVIDIA A100 PCIe 80GB",
            "short_name": "A100",
            "vram_mib": 81920,
            "bar_mib": 131072,
        },
    )
    return model


def make_profile_host(
    profile: str, *, region: Region | None = None, hostname: str | None = None, uri: str | None = None
) -> Host:
    """A host enrolled through discovery from a host profile (hypervisor/profiles), its GPU models known.

    `uri` points it at another node file (a test's modified copy of the profile)."""
    region = region or make_region()
    make_gpu_model()
    make_a100_model()
    hostname = hostname or unique(f"{region.id}-{profile}")
    host, _ = host_enroll(
        region=region,
        hostname=hostname,
        libvirt_uri=uri or profile_uri(profile, hostname),
        kind=Host.Kind.STANDARD if profile == STANDARD_2X32 else Host.Kind.GPU,
        profile=profile,
    )
    return host


def make_instance(
    *,
    plan: InstanceType,
    image: Image | None = None,
    account: Account | None = None,
    region: Region | None = None,
    label: str | None = None,
) -> Instance:
    return Instance.objects.create(
        account=account or make_account(),
        label=label or unique("linode"),
        region=region or make_region(),
        instance_type=plan,
        image=image,
    )


def make_allocation(
    *, instance: Instance, host: Host, gpus: int, vcpus: int, memory_mib: int, hugepages: bool = True
) -> Allocation:
    """Allocation rows written directly, as a claim would, without depending on the claim service: GPUs
    filled node by node in index order, each node giving its share of vCPUs (whole unreserved cores,
    vCPUs 2k and 2k+1 on one core) and of memory (on 1 GiB pages when the node has them)."""
    cards = list(
        GpuDevice.objects.filter(host=host, state=GpuDevice.State.AVAILABLE)
        .annotate(active=active_allocation_exists(GpuDevice))
        .filter(active=False)
        .exclude(numa_node=None)
        .select_related("numa_node")
        .order_by("numa_node__index", "pci_address")[:gpus]
    )
    assert len(cards) == gpus, f"{host} has {len(cards)} free GPUs, not {gpus}"
    per_node: dict = {}
    for card in cards:
        per_node.setdefault(card.numa_node, []).append(card)
    if not gpus:  # a plan without GPUs (or a machine without any) takes its share from the first node
        per_node[host.numa_nodes.order_by("index").first()] = []
    allocation = Allocation.objects.create(instance=instance, host=host, instance_type=instance.instance_type)
    vcpu = memory_used = 0
    nodes = list(per_node.items())
    for position, (node, node_cards) in enumerate(nodes):
        last = position == len(nodes) - 1
        share_vcpus = vcpus - vcpu if last else 2 * round(vcpus * len(node_cards) / gpus / 2)
        share_memory = memory_mib - memory_used if last else memory_mib * len(node_cards) // gpus
        memory_used += share_memory
        free = (
            HostCpu.objects.filter(numa_node=node, reserved=False)
            .annotate(active=active_allocation_exists(HostCpu))
            .filter(active=False)
        )
        cores = sorted({tuple(sorted(cpu.siblings)) for cpu in free})[: (share_vcpus + 1) // 2]
        threads = [cpu_id for core in cores for cpu_id in core][:share_vcpus]
        by_id = {cpu.cpu_id: cpu for cpu in free}
        for cpu_id in threads:
            AllocatedCpu.objects.create(allocation=allocation, cpu=by_id[cpu_id], vcpu=vcpu)
            vcpu += 1
        pages = (
            share_memory // 1024 if hugepages and node.hugepages_1g_total and share_memory % 1024 == 0 else 0
        )
        AllocatedMemory.objects.create(
            allocation=allocation, numa_node=node, memory_mib=share_memory, hugepages_1g=pages
        )
        for card in node_cards:
            AllocatedGpu.objects.create(allocation=allocation, gpu=card)
    Instance.objects.filter(pk=instance.pk).update(host=host)
    numa_counters_recount(host=host)
    return allocation
