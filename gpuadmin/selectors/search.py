"""The console's one search box: accounts, instances, hosts, GPUs and addresses."""

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q, TextField
from django.db.models.functions import Cast

from accounts.models import Account
from inventory.models import GpuDevice, Host
from provisioning.models import Instance

__all__ = ["SEARCH_KINDS", "SearchHit", "SearchResults", "console_search"]


SEARCH_LIMIT = 20
SEARCH_KINDS = ("account", "instance", "host", "gpu")
# A piece of a PCI address ("3b:00.0", "0000:3b", "3b:00"): hex digits with a colon or a dot.
_PCI_FRAGMENT = re.compile(r"[0-9a-f:.]*[:.][0-9a-f:.]*")


@dataclass(frozen=True)
class SearchHit:
    kind: str  # account, instance, host, gpu
    object_id: int
    title: str
    detail: str


@dataclass
class SearchResults:
    query: str
    hits: dict[str, list[SearchHit]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(h) for h in self.hits.values())


def console_search(*, query: str, kinds: Iterable[str] = SEARCH_KINDS) -> SearchResults:
    """The console's one search box: accounts (name, email, company, id), instances (label, id, address),
    hosts (hostname) and GPUs (PCI address), at most SEARCH_LIMIT of each, in a query per kind.

    An address is matched whole (198.51.100.7 does not find 198.51.100.70)."""
    query = query.strip()
    results = SearchResults(query=query)
    if not query:
        return results
    kinds = set(kinds)
    number = int(query) if query.isdigit() and len(query) < 18 else None
    address = _address(query)
    if "account" in kinds:
        accounts = Account.objects.filter(
            Q(name__icontains=query)
            | Q(email__icontains=query)
            | Q(company__icontains=query)
            | Q(pk=number if number is not None else -1)
        ).order_by("name")[:SEARCH_LIMIT]
        results.hits["account"] = [
            SearchHit("account", a.pk, a.name, f"{a.get_kind_display()} · {a.email}") for a in accounts
        ]
    if "instance" in kinds:
        match = Q(label__icontains=query) | Q(pk=number if number is not None else -1)
        if address is not None:
            match |= Q(ipv4_text__contains=f'"{address}"') | Q(ipv6__istartswith=address)
        instances = (
            Instance.objects.alias(ipv4_text=Cast("ipv4", TextField()))
            .filter(match)
            .select_related("account", "host")
            .order_by("-id")[:SEARCH_LIMIT]
        )
        results.hits["instance"] = [
            SearchHit(
                "instance",
                i.pk,
                f"{i.label} ({i.pk})",
                f"{i.account.name} · {i.status} · {i.instance_type_id} in {i.region_id}"
                + (f" on {i.host.hostname}" if i.host_id else "")
                + (f" · {', '.join(i.ipv4)}" if i.ipv4 else ""),
            )
            for i in instances
        ]
    if "host" in kinds:
        hosts = Host.objects.filter(hostname__icontains=query).order_by("hostname")[:SEARCH_LIMIT]
        results.hits["host"] = [
            SearchHit("host", h.pk, h.hostname, f"{h.region_id} · {h.kind} · {h.state}") for h in hosts
        ]
    if "gpu" in kinds and address is None and _PCI_FRAGMENT.fullmatch(query.lower()):
        gpus = (
            GpuDevice.objects.filter(pci_address__icontains=query.lower())
            .select_related("host", "model")
            .order_by("host__hostname", "pci_address")[:SEARCH_LIMIT]
        )
        results.hits["gpu"] = [
            SearchHit(
                "gpu", g.pk, f"{g.pci_address} on {g.host.hostname}", f"{g.model.short_name} · {g.state}"
            )
            for g in gpus
        ]
    return results


def _address(query: str) -> str | None:
    try:
        return str(ipaddress.ip_address(query))
    except ValueError:
        return None
