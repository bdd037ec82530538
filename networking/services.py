"""Every write to pools and addresses: define a pool, claim an address for an instance, release it.

An address is claimed inside the create transaction (provisioning.services.instance_create), after the
host's allocation, and released in the transaction that releases the allocation: the lock order is
always host, then address, so the two never deadlock.
"""

import ipaddress
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from inventory.models import Region
from networking import rows
from networking.exceptions import AddressesExhausted, PoolInvalid
from networking.models import Ipv4Address, Ipv4Assignment, Ipv4Pool


def pool_check(*, pool: Ipv4Pool) -> Ipv4Pool:
    """Raises PoolInvalid naming the field at fault: the rules of the model, and no overlap."""
    try:
        pool.full_clean()
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise PoolInvalid(" ".join(messages), field=field) from exc
    network = pool.ip_network()
    for other in Ipv4Pool.objects.exclude(pk=pool.pk):
        if other.ip_network().overlaps(network):
            raise PoolInvalid(f"{network} overlaps {other.cidr} of {other.region_id}.", field="network")
    return pool


def pool_create(*, region: Region, network: str, gateway: str | None = None, reserved: str = "") -> Ipv4Pool:
    """A pool and a row for each of its host addresses (`network` like "203.0.113.0/24"; the gateway is
    the first host address unless given). The gateway and the reserved ranges are marked reserved."""
    try:
        parsed = ipaddress.IPv4Network(network)
    except ValueError as exc:
        raise PoolInvalid(f"{network} is not an IPv4 network: {exc}", field="network") from exc
    with transaction.atomic():
        pool = pool_check(
            pool=Ipv4Pool(
                region=region,
                network=str(parsed.network_address),
                prefix_length=parsed.prefixlen,
                gateway=gateway or str(next(parsed.hosts())),
                reserved=reserved,
            )
        )
        pool.save()
        kept = pool.reserved_addresses()
        Ipv4Address.objects.bulk_create(
            Ipv4Address(pool=pool, address=str(host), reserved=host in kept) for host in parsed.hosts()
        )
    return pool


def pool_update(*, pool: Ipv4Pool, gateway: str, reserved: str) -> Ipv4Pool:
    """A new gateway or new reserved ranges. The network of a pool never changes (make a new pool)."""
    with transaction.atomic():
        pool = Ipv4Pool.objects.select_for_update().get(pk=pool.pk)
        pool.gateway, pool.reserved = gateway, reserved
        pool_check(pool=pool).save(update_fields=["gateway", "reserved"])
        kept = {str(a) for a in pool.reserved_addresses()}
        pool.addresses.filter(address__in=kept, reserved=False).update(reserved=True)
        pool.addresses.exclude(address__in=kept).filter(reserved=True).update(reserved=False)
    return pool


def free_addresses(*, now=None) -> QuerySet[Ipv4Address]:
    """Addresses that may be handed out now."""
    now = now or timezone.now()
    return Ipv4Address.objects.filter(holder__isnull=True, reserved=False).filter(
        Q(free_after__isnull=True) | Q(free_after__lte=now)
    )


def address_claim(*, instance, region: Region, new_instance: bool = False) -> Ipv4Address:
    """Give `instance` a free address of `region`, inside the caller's transaction. An instance that
    holds one already keeps it (a create retried); one inserted in this transaction (`new_instance`)
    cannot, and is not asked. Raises AddressesExhausted when none is free.

    Locked rows are passed over (another create holds them until it commits or rolls back); only
    when nothing else is left does the claim wait for them, and a row its holder took is then skipped
    by PostgreSQL's re-check of `holder IS NULL` on the row's new version."""
    held = None if new_instance else Ipv4Address.objects.filter(holder=instance).first()
    if held is not None:
        return held
    now = timezone.now()
    if connection.vendor == "postgresql":
        claimed = rows.claim_first_free(region_id=region.pk, instance_id=instance.pk, now=now)
        if claimed is not None:
            address_id, pool_id, address = claimed
            return _held(Ipv4Address(id=address_id, pool_id=pool_id, address=address), instance, now)
    # Pool by pool, each read in the order of index ipv4address_unheld_by_pool (pool, id) and stopped at
    # the first row: a read across the region's pools has to sort every free address (65,536 of a /16,
    # 60-90 ms a create), and the planner chooses that whenever its statistics make the pool look
    # small, as they do right after a pool's addresses were written. On PostgreSQL this is the path
    # taken when every free row is held by another transaction: this one waits for them.
    pools = list(Ipv4Pool.objects.filter(region=region).order_by("id").values_list("id", flat=True))
    free = free_addresses(now=now)
    address = _first_free(free, pools, wait=False) or _first_free(free, pools, wait=True)
    if address is None:
        raise AddressesExhausted(f"{region.id} has no free public IPv4 address")
    address.holder, address.held_since, address.free_after = instance, now, None
    # Only the holder, its start and the cool-down change. The row's pool and address are as read and the
    # holder is the instance the caller holds: none is looked up again. One holder per address was checked
    # at the top (an instance keeps what it holds); the database holds it, with the other constraints.
    address.full_clean(exclude=_UNCHANGED_BY_CLAIM, validate_unique=False, validate_constraints=False)
    address.save(update_fields=["holder", "held_since", "free_after"])
    Ipv4Assignment.objects.create(address=address, instance=instance, assigned_at=now)
    return address


def _held(address: Ipv4Address, instance, now) -> Ipv4Address:
    """The row the one-statement claim wrote, as the ORM path would have left it in memory."""
    address.reserved, address.holder, address.held_since, address.free_after = False, instance, now, None
    address._state.adding, address._state.db = False, connection.alias
    return address


_UNCHANGED_BY_CLAIM = [
    f.name for f in Ipv4Address._meta.concrete_fields if f.name not in ("held_since", "free_after")
]


def _first_free(free: QuerySet[Ipv4Address], pools: list[int], *, wait: bool) -> Ipv4Address | None:
    """Lock the first free address of the first pool that has one; rows other transactions hold are
    passed over unless `wait`."""
    for pool_id in pools:
        address = free.filter(pool_id=pool_id).order_by("id").select_for_update(skip_locked=not wait).first()
        if address is not None:
            return address
    return None


def addresses_release(*, instance) -> list[str]:
    """Let go of what `instance` holds: each address cools down for GPUADMIN_ADDRESS_COOLDOWN_SECONDS
    before it is handed out again (caches, reputations and old DNS records of the last holder fade).
    Releasing twice does nothing. Returns the addresses released."""
    with transaction.atomic():
        now = timezone.now()
        cooled = now + timedelta(seconds=settings.GPUADMIN_ADDRESS_COOLDOWN_SECONDS)
        held = list(Ipv4Address.objects.select_for_update().filter(holder=instance).order_by("id"))
        for address in held:
            address.holder, address.held_since, address.free_after = None, None, cooled
            address.save(update_fields=["holder", "held_since", "free_after"])
        Ipv4Assignment.objects.filter(instance=instance, released_at__isnull=True).update(released_at=now)
    return [address.address for address in held]
