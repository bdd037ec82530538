"""Reads of pools and addresses."""

import ipaddress
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from networking.models import Ipv4Address, Ipv4Pool


@dataclass(frozen=True)
class InstanceIpv4:
    """An instance's public IPv4 address as the guest configures it (NoCloud network-config)."""

    address: str  # "203.0.113.7"
    prefix_length: int  # 24
    gateway: str  # "203.0.113.1"
    network: str  # "203.0.113.0/24"

    @property
    def with_prefix(self) -> str:
        """The address with its prefix length, as netplan's `addresses:` wants it: "203.0.113.7/24"."""
        return f"{self.address}/{self.prefix_length}"

    @property
    def netmask(self) -> str:
        return str(ipaddress.IPv4Network(self.network).netmask)


def instance_ipv4(*, instance) -> InstanceIpv4 | None:
    """The address `instance` holds now, or None (not created yet, failed, or deleted). One query."""
    held = Ipv4Address.objects.filter(holder=instance).select_related("pool").first()
    if held is None:
        return None
    return InstanceIpv4(
        address=held.address,
        prefix_length=held.pool.prefix_length,
        gateway=held.pool.gateway,
        network=held.pool.cidr,
    )


@dataclass(frozen=True)
class PoolUsage:
    pool: str  # "203.0.113.0/24"
    region: str
    total: int  # host addresses of the network
    held: int
    reserved: int  # the gateway and reserved ranges, not held
    cooling: int  # released, still in their cool-down
    free: int  # may be handed out now

    def as_dict(self) -> dict:
        return {
            "pool": self.pool,
            "region": self.region,
            "total": self.total,
            "held": self.held,
            "reserved": self.reserved,
            "cooling": self.cooling,
            "free": self.free,
        }


def pool_usage(*, region: str | None = None) -> list[PoolUsage]:
    """Per pool: held, reserved, cooling and free addresses. One query whatever the number of pools."""
    now = timezone.now()
    unheld = Q(addresses__holder__isnull=True)
    cooling = unheld & Q(addresses__reserved=False, addresses__free_after__gt=now)
    pools = Ipv4Pool.objects.order_by("region_id", "network").annotate(
        n_total=Count("addresses"),
        n_held=Count("addresses", filter=~unheld),
        n_reserved=Count("addresses", filter=unheld & Q(addresses__reserved=True)),
        n_cooling=Count("addresses", filter=cooling),
    )
    if region is not None:
        pools = pools.filter(region_id=region)
    return [
        PoolUsage(
            pool=pool.cidr,
            region=pool.region_id,
            total=pool.n_total,
            held=pool.n_held,
            reserved=pool.n_reserved,
            cooling=pool.n_cooling,
            free=pool.n_total - pool.n_held - pool.n_reserved - pool.n_cooling,
        )
        for pool in pools
    ]
