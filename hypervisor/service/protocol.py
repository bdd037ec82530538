"""What travels between a caller and the hypervisor service, and which functions may be called by name.

A request is `(name, uris, args, kwargs)`: `name` is "module:function" of a public function of a
`hypervisor` module, called as `function(connection to each of uris, *args, **kwargs)` (one URI for
most calls, two for a volume copy). An answer is
`("ok", result, "")` or `("error", exception, remote traceback)`. Both are pickled by
multiprocessing.connection over a unix socket whose peers proved they hold the service's key.
"""

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

from hypervisor.errors import PermanentHypervisorError

# The longest call on a simulated host is a few milliseconds; this only bounds a wedged service.
CALL_TIMEOUT_SECONDS = 120.0
PACKAGE = "hypervisor"


def authkey_path(socket_path: str | Path) -> Path:
    """The key beside the socket: only processes that can read it (same user, mode 0600) may call."""
    return Path(f"{socket_path}.key")


def function_name(function: Callable) -> str:
    return f"{function.__module__}:{function.__qualname__}"


def resolve(name: str, *, uri: str) -> Callable:
    """The function a request names, refusing anything that is not a public hypervisor-layer call."""
    module_name, _, function = name.partition(":")
    allowed = (
        module_name.startswith(f"{PACKAGE}.")
        and not module_name.startswith(f"{PACKAGE}.service")
        and function.isidentifier()
        and not function.startswith("_")
    )
    target = None
    if allowed:
        try:
            target = getattr(importlib.import_module(module_name), function, None)
        except ImportError:
            target = None
    if not inspect.isfunction(target) or target.__module__ != module_name:
        raise PermanentHypervisorError(
            f"the hypervisor service runs only public functions of the {PACKAGE} package, not {name!r}",
            uri=uri,
        )
    return target
