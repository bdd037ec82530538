"""Where a hypervisor call runs: in this process, or in the hypervisor service that owns the simulated hosts.

Every call on a host goes through `on_host(uri, function, *args, **kwargs)`, which runs
`function(conn, *args, **kwargs)` with a libvirt connection to the host. A real host (qemu:///system,
qemu+tls://, qemu+ssh://) keeps its state in its libvirtd, so each process opens its own connection.
libvirt's test driver keeps a simulated host's state inside the process that opened it, so once
`use_service(socket)` is called (the demo sets GPUADMIN_HYPERVISOR_SOCKET), calls on test-driver URIs
are sent to the one service process holding them (hypervisor/service), and every web and worker
process sees the same guests. Without a service (tests, production) they run here, as before.

The call crosses the process boundary by name and plain data: any public function of a `hypervisor`
module whose first parameter is the connection works (`on_hosts` for one taking several), with
picklable arguments and results, and its HypervisorError comes back as the same class with the same
code and step.
"""

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from hypervisor.connection import connect
from hypervisor.errors import PermanentHypervisorError
from hypervisor.service.client import ServiceClient

T = TypeVar("T")

_service: ServiceClient | None = None


def simulated(uri: str) -> bool:
    """True for libvirt's in-process test driver (test:///...); not for test+unix:// through a daemon."""
    return urlsplit(uri).scheme == "test"


def use_service(socket_path: str | None) -> None:
    """Send calls on simulated hosts to the hypervisor service listening at `socket_path` (None: stop)."""
    global _service
    _service = ServiceClient(socket_path) if socket_path else None


def service_in_use() -> bool:
    return _service is not None


def on_host(uri: str, function: Callable[..., T], /, *args, **kwargs) -> T:
    """`function(connection to uri, *args, **kwargs)`, run wherever the host's state lives."""
    return on_hosts((uri,), function, *args, **kwargs)


def on_hosts(uris: tuple[str, ...], function: Callable[..., T], /, *args, **kwargs) -> T:
    """`function(connection to uris[0], connection to uris[1], ..., *args, **kwargs)`: a call spanning
    hosts (a volume copy). Simulated hosts live in the service, real ones here; not one of each."""
    if _service is not None and any(simulated(uri) for uri in uris):
        if not all(simulated(uri) for uri in uris):
            raise PermanentHypervisorError(
                f"a call spanning a simulated host and a real one cannot run: {', '.join(uris)}", uri=uris[0]
            )
        return _service.call(uris, function, args, kwargs)
    return function(*(connect(uri) for uri in uris), *args, **kwargs)
