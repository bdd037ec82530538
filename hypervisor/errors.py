"""The hypervisor layer's exceptions: libvirt errors become these, keeping libvirt's code and the URI.

A task retries a `TransientHypervisorError` (the host may answer next time) and gives up on a
`PermanentHypervisorError` (retrying the same call cannot succeed).
"""

import libvirt

# Codes after which the same call may succeed later: the peer went away, timed out, or was busy, or a
# domain changed state under us (another worker's shutdown raced ours).
TRANSIENT_CODES = frozenset(
    {
        libvirt.VIR_ERR_SYSTEM_ERROR,  # connection refused, socket missing, I/O error on the link
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_INVALID_CONN,  # the pooled connection was closed
        libvirt.VIR_ERR_OPERATION_TIMEOUT,
        libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
        libvirt.VIR_ERR_RESOURCE_BUSY,
        libvirt.VIR_ERR_OPERATION_INVALID,
        libvirt.VIR_ERR_OPERATION_ABORTED,
        libvirt.VIR_ERR_SSH,
        libvirt.VIR_ERR_LIBSSH,
    }
)

# Codes that mean the connection itself is unusable: the pool drops it so the next call reconnects.
CONNECTION_LOST_CODES = frozenset(
    {libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_INVALID_CONN}
)


def connection_lost(exc: libvirt.libvirtError) -> bool:
    """The link to the host broke. libvirt reports a link cut by keepalive ("connection closed due to
    keepalive timeout") and every call after it ("client socket is closed") as internal errors of its
    RPC layer, not as RPC errors: without this a host that stopped answering would fail a job at once."""
    code = exc.get_error_code()
    rpc_layer_gave_up = (
        exc.get_error_domain() == libvirt.VIR_FROM_RPC and code == libvirt.VIR_ERR_INTERNAL_ERROR
    )
    return code in CONNECTION_LOST_CODES or rpc_layer_gave_up


class HypervisorError(Exception):
    """A libvirt call failed. `uri` names the host, `code` is libvirt's error code when there is one."""

    transient = False

    def __init__(self, message: str, *, uri: str, code: int | None = None, step: str | None = None) -> None:
        self.message = message
        self.uri = uri
        self.code = code
        self.step = step
        super().__init__(f"{uri}: {message}")

    def __reduce__(self):
        # Pickled by the hypervisor service to hand the error to the process that asked: keep the class.
        return _rebuild, (type(self), self.message, self.uri, self.code, self.step)


class TransientHypervisorError(HypervisorError):
    """Worth retrying: the host was unreachable, busy, or changed state during the call."""

    transient = True


class PermanentHypervisorError(HypervisorError):
    """Retrying will not help: bad XML, a missing image, an unsupported request, bad credentials."""


class DiscoveryError(PermanentHypervisorError):
    """The host's capabilities or node devices cannot be read into a HostDescription."""


def _rebuild(
    cls: type[HypervisorError], message: str, uri: str, code: int | None, step: str | None
) -> HypervisorError:
    return cls(message, uri=uri, code=code, step=step)


def from_libvirt(exc: libvirt.libvirtError, *, uri: str, step: str | None = None) -> HypervisorError:
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if step:
        message = f"{step} failed: {message}"
    cls = (
        TransientHypervisorError
        if code in TRANSIENT_CODES or connection_lost(exc)
        else PermanentHypervisorError
    )
    return cls(message, uri=uri, code=code, step=step)
