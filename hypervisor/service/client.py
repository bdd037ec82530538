"""The caller's side: send one hypervisor call to the service and return its result or raise its error.

One connection per thread and process (a forked django-q worker never shares its parent's socket).
A connection that broke before the request went out is reopened once; every hypervisor call converges,
so a caller that retries after a lost answer is safe too.
"""

import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Client, Connection

from hypervisor.errors import PermanentHypervisorError, TransientHypervisorError
from hypervisor.service.protocol import CALL_TIMEOUT_SECONDS, authkey_path, function_name


class ServiceClient:
    def __init__(self, socket_path: str, *, timeout: float = CALL_TIMEOUT_SECONDS) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._local = threading.local()

    def call(self, uris: str | tuple[str, ...], function: Callable, args: tuple, kwargs: dict):
        """`function(connection to each of uris..., *args, **kwargs)` in the service."""
        uris = (uris,) if isinstance(uris, str) else tuple(uris)
        uri, name = uris[0], function_name(function)
        request = (name, uris, args, kwargs)
        conn = self._connection(uri)
        try:
            conn.send(request)
        except (OSError, EOFError):  # the service restarted since: nothing was sent, so send again
            self._drop()
            conn = self._connection(uri)
            self._send(conn, request, uri=uri, name=name)
        if not conn.poll(self.timeout):
            self._drop()
            raise TransientHypervisorError(
                f"the hypervisor service at {self.socket_path} did not answer {name} "
                f"within {self.timeout:g} s",
                uri=uri,
            )
        try:
            status, payload, remote_traceback = conn.recv()
        except (OSError, EOFError) as exc:
            self._drop()
            raise TransientHypervisorError(
                f"lost the hypervisor service at {self.socket_path} during {name}: {exc or 'closed'}", uri=uri
            ) from exc
        if status == "ok":
            return payload
        payload.add_note(f"raised in the hypervisor service:\n{remote_traceback}")
        raise payload

    def close(self) -> None:
        self._drop()

    def _connection(self, uri: str) -> Connection:
        local = self._local
        if getattr(local, "pid", None) == os.getpid() and local.conn is not None:
            if _idle(local.conn):
                return local.conn
            self._drop()
        try:
            with open(authkey_path(self.socket_path), "rb") as key_file:
                authkey = key_file.read()
            conn = Client(self.socket_path, family="AF_UNIX", authkey=authkey)
        except FileNotFoundError as exc:
            raise TransientHypervisorError(
                f"no hypervisor service at {self.socket_path} ({exc.filename} is missing); "
                "the demo starts it (scripts/run-demo)",
                uri=uri,
            ) from exc
        except (OSError, EOFError) as exc:
            raise TransientHypervisorError(
                f"cannot reach the hypervisor service at {self.socket_path}: {exc}", uri=uri
            ) from exc
        except Exception as exc:  # multiprocessing.AuthenticationError: a stale key beside a new socket
            raise PermanentHypervisorError(
                f"the hypervisor service at {self.socket_path} refused us: {exc}", uri=uri
            ) from exc
        local.pid, local.conn = os.getpid(), conn
        return conn

    def _send(self, conn: Connection, request: tuple, *, uri: str, name: str) -> None:
        try:
            conn.send(request)
        except (OSError, EOFError) as exc:
            self._drop()
            raise TransientHypervisorError(
                f"cannot send {name} to the hypervisor service at {self.socket_path}: {exc}", uri=uri
            ) from exc

    def _drop(self) -> None:
        local = self._local
        conn = getattr(local, "conn", None)
        local.conn = None
        if conn is not None and getattr(local, "pid", None) == os.getpid():
            try:
                conn.close()
            except OSError:
                pass


def _idle(conn: Connection) -> bool:
    """Open with nothing to read. Readable before we asked means the service closed it (it restarted)."""
    try:
        return not conn.poll(0)
    except (OSError, EOFError):
        return False
