"""IPv4 pools per region, one row per address, and who held which address when.

An address is an allocation like a GPU: `Ipv4Address.holder` is the instance holding it now (the row a
claim locks and a concurrent claim re-checks), `Ipv4Assignment` the history of holders, with a partial
unique constraint that makes two active holders of one address impossible even if the code is wrong.
"""

import ipaddress

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

# Smallest and largest pool: a /16 is 65,534 rows; a /30 has two host addresses (one is the gateway).
MIN_PREFIX, MAX_PREFIX = 16, 30


def parse_reserved(text: str) -> list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]]:
    """The reserved ranges as written by staff: one per line, `first-last` or a single address;
    blank lines and `#` comments are ignored. Raises ValueError naming the line at fault."""
    ranges = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        first, _, last = (part.strip() for part in line.partition("-"))
        try:
            low = ipaddress.IPv4Address(first)
            high = ipaddress.IPv4Address(last) if last else low
        except ValueError as exc:
            raise ValueError(f"line {number}: {line!r} is not an address or a first-last range") from exc
        if high < low:
            raise ValueError(f"line {number}: {line!r} ends before it starts")
        ranges.append((low, high))
    return ranges


def _is_host_of(address: ipaddress.IPv4Address, network: ipaddress.IPv4Network) -> bool:
    return address in network and address not in (network.network_address, network.broadcast_address)


class Ipv4Pool(models.Model):
    """A public IPv4 network of a region. Its addresses are rows (Ipv4Address) written by the pool
    services when the pool is created; the gateway and the reserved ranges are never handed out."""

    region = models.ForeignKey("inventory.Region", on_delete=models.PROTECT, related_name="ipv4_pools")
    network = models.GenericIPAddressField(protocol="IPv4", unique=True, help_text="203.0.113.0")
    prefix_length = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(MIN_PREFIX), MaxValueValidator(MAX_PREFIX)],
        help_text=f"24 for a /24 ({MIN_PREFIX}-{MAX_PREFIX}).",
    )
    gateway = models.GenericIPAddressField(protocol="IPv4", help_text="The guests' default route.")
    reserved = models.TextField(
        blank=True,
        help_text="Addresses never handed out (routers, anycast, the provider's own): one per line, "
        "203.0.113.2 or 203.0.113.2-203.0.113.9. An address held when it becomes reserved stays with "
        "its instance until released.",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["region_id", "network"]
        verbose_name = "IPv4 pool"
        constraints = [
            models.CheckConstraint(
                condition=Q(prefix_length__gte=MIN_PREFIX, prefix_length__lte=MAX_PREFIX),
                name="ipv4pool_prefix_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.region_id} {self.network}/{self.prefix_length}"

    @property
    def cidr(self) -> str:
        return f"{self.network}/{self.prefix_length}"

    def ip_network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def netmask(self) -> str:
        return str(self.ip_network().netmask)

    def clean(self) -> None:
        errors = {}
        try:
            network = ipaddress.IPv4Network(self.cidr)  # strict: host bits must be zero
        except ValueError as exc:
            raise ValidationError({"network": f"{self.cidr} is not a network: {exc}"}) from exc
        if not MIN_PREFIX <= network.prefixlen <= MAX_PREFIX:
            return  # the field's own validator says so
        try:
            gateway = ipaddress.IPv4Address(self.gateway)
        except ValueError:
            gateway = None  # the field's own validator says so
        if gateway is not None and not _is_host_of(gateway, network):
            errors["gateway"] = f"The gateway {self.gateway} is not a host address of {network}."
        try:
            for low, high in parse_reserved(self.reserved):
                if low not in network or high not in network:
                    errors["reserved"] = f"{low}-{high} is not inside {network}."
                    break
        except ValueError as exc:
            errors["reserved"] = str(exc)
        if errors:
            raise ValidationError(errors)

    def reserved_addresses(self) -> set[ipaddress.IPv4Address]:
        """The gateway and every address of the reserved ranges."""
        found = {ipaddress.IPv4Address(self.gateway)}
        for low, high in parse_reserved(self.reserved):
            found.update(ipaddress.IPv4Address(n) for n in range(int(low), int(high) + 1))
        return found


class Ipv4Address(models.Model):
    """One host address of a pool. Free when it has no holder, is not reserved and its cool-down
    (`free_after`, set on release) has passed."""

    pool = models.ForeignKey(Ipv4Pool, on_delete=models.CASCADE, related_name="addresses")
    address = models.GenericIPAddressField(protocol="IPv4", unique=True)
    reserved = models.BooleanField(default=False, help_text="The gateway or in a reserved range.")
    holder = models.ForeignKey(
        "provisioning.Instance",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The instance holding the address now (its active Ipv4Assignment).",
    )
    held_since = models.DateTimeField(null=True, blank=True)
    free_after = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Released: not handed out again before this (GPUADMIN_ADDRESS_COOLDOWN_SECONDS).",
    )

    class Meta:
        ordering = ["id"]
        verbose_name = "IPv4 address"
        constraints = [
            models.UniqueConstraint(
                fields=["holder"], condition=Q(holder__isnull=False), name="ipv4address_one_per_instance"
            ),
            models.CheckConstraint(
                condition=Q(holder__isnull=True) | Q(held_since__isnull=False, free_after__isnull=True),
                name="ipv4address_held_has_since_and_no_cooldown",
            ),
        ]
        indexes = [
            # The claim's candidates: unheld, unreserved addresses of a pool, lowest first.
            models.Index(
                fields=["pool", "id"],
                condition=Q(holder__isnull=True, reserved=False),
                name="ipv4address_unheld_by_pool",
            ),
        ]

    def __str__(self) -> str:
        return self.address


class Ipv4Assignment(models.Model):
    """Who held an address, from when to when (for abuse reports and audits). Released, never deleted."""

    address = models.ForeignKey(Ipv4Address, on_delete=models.PROTECT, related_name="assignments")
    instance = models.ForeignKey(
        "provisioning.Instance", on_delete=models.PROTECT, related_name="ipv4_assignments"
    )
    assigned_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "IPv4 assignment"
        constraints = [
            models.UniqueConstraint(
                fields=["address"],
                condition=Q(released_at__isnull=True),
                name="ipv4assignment_one_active_holder_per_address",
            ),
            models.UniqueConstraint(
                fields=["instance"],
                condition=Q(released_at__isnull=True),
                name="ipv4assignment_one_active_address_per_instance",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address_id} to instance {self.instance_id}"
