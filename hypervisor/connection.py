"""libvirt connections, pooled by URI: one per host and process, reopened when it drops.

Opening a connection has a timeout (an ssh or TLS peer that never answers must not hang a task), and
remote connections send keepalives so a call on a dead peer fails instead of blocking for ever. Both
need libvirt's event loop, which runs in a daemon thread started on the first open. `configure` sets
both for the process (Django passes its GPUADMIN_LIBVIRT_* settings).
"""

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import libvirt

from hypervisor import faults
from hypervisor.errors import HypervisorError, TransientHypervisorError, connection_lost, from_libvirt
from hypervisor.faults import Step

OPEN_TIMEOUT_SECONDS = 15.0
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3

# libvirt prints every error to stderr by default; we raise them instead, with the host named.
libvirt.registerErrorHandler(lambda _ctx, _error: None, None)

_event_loop_lock = threading.Lock()
_event_loop_pid: int | None = None


def _ensure_event_loop() -> None:
    global _event_loop_pid
    with _event_loop_lock:
        if _event_loop_pid == os.getpid():
            return
        if _event_loop_pid is None:
            libvirt.virEventRegisterDefaultImpl()
        # After a fork (django-q workers) the registration survives but the thread does not.
        threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
        _event_loop_pid = os.getpid()


def _run_event_loop() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()


class ConnectionPool:
    """Connections keyed by URI. `get` returns a live one, reopening it if it was closed or dropped.

    `locate` maps the URI a host is known by to the URI actually opened (the hypervisor service opens a
    simulated host's saved state instead of its profile); the pool still keys and names it by the first.
    """

    def __init__(
        self,
        *,
        open_timeout: float = OPEN_TIMEOUT_SECONDS,
        keepalive_interval: int = KEEPALIVE_INTERVAL_SECONDS,
        keepalive_count: int = KEEPALIVE_COUNT,
        locate: Callable[[str], str] | None = None,
    ) -> None:
        self.open_timeout = open_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count = keepalive_count
        self.locate = locate
        self._lock = threading.Lock()
        self._connections: dict[str, libvirt.virConnect] = {}
        self._uris: weakref.WeakKeyDictionary[libvirt.virConnect, str] = weakref.WeakKeyDictionary()
        self._pid = os.getpid()

    def get(self, uri: str) -> libvirt.virConnect:
        faults.check(Step.CONNECT, uri)
        with self._lock:
            self._forget_parent_connections()
            conn = self._connections.get(uri)
        if conn is not None and _alive(conn):
            return conn
        if conn is not None:
            self.discard(uri)
        conn = self._open(uri)
        with self._lock:
            existing = self._connections.setdefault(uri, conn)
            self._uris[existing] = uri
        if existing is not conn:  # another thread opened it first
            _close_quietly(conn)
        return existing

    def uri_of(self, conn: libvirt.virConnect) -> str:
        """The URI a pooled connection was opened with (as stored on the Host), without a libvirt call."""
        with self._lock:
            uri = self._uris.get(conn)
        if uri is not None:
            return uri
        try:
            return conn.getURI()
        except libvirt.libvirtError:
            return "<unknown libvirt URI>"

    def discard(self, uri: str) -> None:
        with self._lock:
            conn = self._connections.pop(uri, None)
        if conn is not None:
            _close_quietly(conn)

    def close_all(self) -> None:
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
        for conn in connections:
            _close_quietly(conn)

    def _forget_parent_connections(self) -> None:
        # A forked child shares the parent's sockets; closing them would cut the parent off too.
        if self._pid != os.getpid():
            self._connections.clear()
            self._pid = os.getpid()

    def _open(self, uri: str) -> libvirt.virConnect:
        _ensure_event_loop()
        result: dict[str, object] = {}
        done = threading.Event()
        abandoned = threading.Event()

        target = self.locate(uri) if self.locate is not None else uri

        def opener() -> None:
            try:
                conn = libvirt.open(target)
            except libvirt.libvirtError as exc:
                result["error"] = exc
            else:
                if abandoned.is_set():
                    _close_quietly(conn)
                result["conn"] = conn
            done.set()

        threading.Thread(target=opener, name=f"libvirt-open {uri}", daemon=True).start()
        if not done.wait(self.open_timeout):
            abandoned.set()
            raise TransientHypervisorError(
                f"no answer within {self.open_timeout:g} s while connecting", uri=uri, step=str(Step.CONNECT)
            )
        if "error" in result:
            raise from_libvirt(result["error"], uri=uri, step=str(Step.CONNECT))
        conn = result["conn"]
        try:
            conn.setKeepAlive(self.keepalive_interval, self.keepalive_count)
        except libvirt.libvirtError:
            pass  # in-process drivers (test://) have no link to keep alive
        return conn


def _alive(conn: libvirt.virConnect) -> bool:
    try:
        return conn.isAlive() == 1
    except libvirt.libvirtError:
        return False


def _close_quietly(conn: libvirt.virConnect) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        pass


default_pool = ConnectionPool()


def is_test_driver(uri: str) -> bool:
    """True for libvirt's test driver, in process (test:///...) or served by a daemon (test+unix://...).

    Such a host has no hardware behind it: a PCI reset there is simulated, never a real one.
    """
    scheme = urlsplit(uri).scheme
    return scheme == "test" or scheme.startswith("test+")


def configure(
    *,
    open_timeout: float | None = None,
    keepalive_interval: int | None = None,
    keepalive_count: int | None = None,
    locate: Callable[[str], str] | None = None,
) -> None:
    """Tune the process's pool; connections opened from now on use the new values."""
    if open_timeout is not None:
        default_pool.open_timeout = open_timeout
    if keepalive_interval is not None:
        default_pool.keepalive_interval = keepalive_interval
    if keepalive_count is not None:
        default_pool.keepalive_count = keepalive_count
    if locate is not None:
        default_pool.locate = locate


def connect(uri: str) -> libvirt.virConnect:
    """A live, pooled connection to the host at `uri`. Do not close it; the pool owns it."""
    return default_pool.get(uri)


_probing: set[str] = set()
_probing_lock = threading.Lock()


def probe(uris: list[str], *, timeout: float) -> dict[str, str | None]:
    """Whether each host's libvirt answers a call, all asked at once and never waited on for longer than
    `timeout` seconds: uri -> None when it answered, else why not.

    A call that hangs goes on in a daemon thread until the connection's own timeouts end it; until then
    that URI is not probed again, so a dead host cannot pile up threads however often it is probed.
    """
    results: dict[str, str | None] = {}
    done: dict[str, threading.Event] = {}
    for uri in dict.fromkeys(uris):
        with _probing_lock:
            if uri in _probing:
                results[uri] = "no answer yet to the previous probe"
                continue
            _probing.add(uri)
        done[uri] = threading.Event()
        threading.Thread(target=_probe_one, args=(uri, results, done[uri]), daemon=True).start()
    deadline = time.monotonic() + timeout
    for uri, event in done.items():
        if not event.wait(max(0.0, deadline - time.monotonic())):
            results[uri] = f"no answer within {timeout:g} s"
    return {uri: results.get(uri) for uri in dict.fromkeys(uris)}


def _probe_one(uri: str, results: dict[str, str | None], done: threading.Event) -> None:
    try:
        with translated(uri=uri, step=Step.CONNECT):
            default_pool.get(uri).getLibVersion()
    except HypervisorError as exc:
        results.setdefault(uri, str(exc))
    except Exception as exc:  # a probe reports whatever went wrong; it never raises into a health check
        results.setdefault(uri, f"{uri}: {exc}")
    finally:
        with _probing_lock:
            _probing.discard(uri)
        done.set()


def uri_of(conn: libvirt.virConnect) -> str:
    return default_pool.uri_of(conn)


@contextmanager
def translated(*, uri: str, step: Step | str | None = None) -> Iterator[None]:
    """Turn a libvirtError raised in the block into a HypervisorError; drop the connection if it broke."""
    try:
        yield
    except libvirt.libvirtError as exc:
        error = from_libvirt(exc, uri=uri, step=str(step) if step else None)
        if connection_lost(exc):
            default_pool.discard(uri)
        raise error from exc
