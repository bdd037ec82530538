"""The service's side: accept callers on a unix socket, run their calls on the simulated hosts it holds.

One thread per caller; libvirt's test driver locks its own state, so calls on one host from several
callers interleave as they would on a real libvirtd.
"""

import logging
import os
import pickle
import secrets
import threading
import traceback
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from hypervisor import connection
from hypervisor.errors import HypervisorError, PermanentHypervisorError
from hypervisor.routing import simulated
from hypervisor.service.protocol import authkey_path, resolve
from hypervisor.service.state import SavedHosts

logger = logging.getLogger("hypervisor.service")


class ServiceAlreadyRunning(RuntimeError):
    pass


class HypervisorService:
    def __init__(self, socket_path: Path, *, state_dir: Path | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.saved = SavedHosts(Path(state_dir)) if state_dir else None
        self._listener: Listener | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Write the key, then listen: a caller that sees the socket can already read the key."""
        self._clear_stale_socket()
        if self.saved is not None:
            connection.configure(locate=self.saved.locate)
        key = secrets.token_bytes(32)
        key_file = authkey_path(self.socket_path)
        key_file.unlink(missing_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(key)
        self._listener = Listener(str(self.socket_path), family="AF_UNIX", authkey=key)
        os.chmod(self.socket_path, 0o600)
        logger.info("hypervisor service listening on %s (pid %s)", self.socket_path, os.getpid())

    def serve_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = self._listener.accept()
            except OSError:
                if self._stopping.is_set():
                    break
                logger.exception("accept failed")
                continue
            except Exception as exc:  # AuthenticationError: a caller without the key
                logger.warning("refused a caller: %s", exc)
                continue
            threading.Thread(target=self._serve_caller, args=(conn,), daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()  # removes the socket file
        authkey_path(self.socket_path).unlink(missing_ok=True)
        connection.default_pool.close_all()

    def _serve_caller(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                answer = self.execute(request)
                try:
                    conn.send(answer)
                except OSError:
                    return
                except Exception as exc:  # a result pickle cannot carry
                    error = PermanentHypervisorError(
                        f"the result cannot be sent back: {exc}", uri=str(request[1][0])
                    )
                    conn.send(("error", error, traceback.format_exc()))

    def execute(self, request: tuple) -> tuple:
        try:
            name, uris, args, kwargs = request
            function = resolve(name, uri=uris[0])
            for uri in uris:
                if not simulated(uri):
                    raise PermanentHypervisorError(
                        "the hypervisor service holds simulated (test:///) hosts only; "
                        "a real host is called directly from each process",
                        uri=uri,
                    )
            try:
                return "ok", function(*(connection.connect(uri) for uri in uris), *args, **kwargs), ""
            finally:
                for uri in uris:
                    self._save(uri)
        except Exception as exc:
            return "error", _portable(exc), traceback.format_exc()

    def _save(self, uri: str) -> None:
        if self.saved is None:
            return
        try:
            self.saved.save(uri, connection.connect(uri))
        except Exception:
            logger.exception("could not save the state of %s", uri)

    def _clear_stale_socket(self) -> None:
        if not self.socket_path.exists():
            return
        try:
            Client(str(self.socket_path), family="AF_UNIX").close()
        except OSError:
            self.socket_path.unlink()  # left by a service that died without cleaning up
            return
        raise ServiceAlreadyRunning(f"a hypervisor service already listens on {self.socket_path}")


def _portable(exc: Exception) -> Exception:
    """The exception if pickle can carry it (HypervisorErrors can), else a permanent error saying so."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        uri = exc.uri if isinstance(exc, HypervisorError) else "hypervisor service"
        return PermanentHypervisorError(f"{type(exc).__name__}: {exc}", uri=uri)
    return exc
