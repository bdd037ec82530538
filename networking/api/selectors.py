"""Reads behind /networking/ips and /linode/instances/{id}/ips: the addresses an account's live
instances hold, joined for serialization."""

import ipaddress

from django.db.models import QuerySet

from networking.models import Ipv4Address


def addresses_of(*, account) -> QuerySet[Ipv4Address]:
    """Addresses held by the account's live instances (an address cooling down is nobody's)."""
    if account is None:
        return Ipv4Address.objects.none()
    return (
        Ipv4Address.objects.filter(holder__account=account, holder__deleted_at__isnull=True)
        .select_related("pool")
        .order_by("id")
    )


def address_of(*, account, address: str) -> Ipv4Address | None:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if parsed.version != 4:
        return None
    return addresses_of(account=account).filter(address=str(parsed)).first()


def instance_addresses(*, instance) -> list[Ipv4Address]:
    return list(Ipv4Address.objects.filter(holder=instance).select_related("pool").order_by("id"))
