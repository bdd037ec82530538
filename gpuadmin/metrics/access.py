"""Who may read /metrics: configured networks, the metrics bearer token, or a staff login."""

import hmac
import ipaddress

from django.conf import settings


def metrics_readable(request) -> bool:
    token = settings.GPUADMIN_METRICS_TOKEN
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(offered.encode(), token.encode()):
        return True
    if _from_trusted_network(request.META.get("REMOTE_ADDR", "")):
        return True
    user = getattr(request, "user", None)
    return bool(user and user.is_authenticated and user.is_staff)


def _from_trusted_network(remote_addr: str) -> bool:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the caller wrote. Behind a proxy, use the token.
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in settings.METRICS_NETWORKS)
