"""A gpuadmin deployment as separate processes, for tests and benchmarks: the pieces and how to talk to them.

HypervisorService   `python -m hypervisor.service` (the simulated hosts every process shares)
WebServers          N gunicorn servers on free ports
Api                 a bearer-token JSON client for one server (requests)
worker_pids         which worker process ran which job, read from the clusters' logs
"""

import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from benchmarks.cluster import ROOT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], object], *, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(poll)


def stop_process(process: subprocess.Popen, *, grace: float = 15) -> None:
    """TERM, then KILL after `grace` seconds; the process group when it leads one."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class HypervisorService:
    """The hypervisor service in a short temporary directory (a unix socket path holds 107 bytes at most)."""

    def __init__(self, *, state_dir: Path | None = None) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="gpuadmin-hv-"))
        self.socket = self.directory / "hypervisor.sock"
        self.state_dir = state_dir
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "HypervisorService":
        ready = self.directory / "ready"
        command = [sys.executable, "-m", "hypervisor.service", "--socket", str(self.socket)]
        command += ["--ready-file", str(ready)]
        if self.state_dir is not None:
            command += ["--state-dir", str(self.state_dir)]
        self.process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
        wait_until(
            lambda: ready.exists() or self.process.poll() is not None, timeout=20, what="hypervisor service"
        )
        if self.process.poll() is not None:
            raise RuntimeError("the hypervisor service exited at start")
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            stop_process(self.process)
        for leftover in self.directory.iterdir():
            leftover.unlink(missing_ok=True)
        self.directory.rmdir()


class WebServers:
    """`count` gunicorn servers (each `workers` processes) on free ports, sharing the environment given."""

    def __init__(self, *, count: int, env: dict[str, str], workers: int = 2, log_dir: Path | None = None):
        self.count = count
        self.env = env
        self.workers = workers
        self.log_dir = log_dir
        self.ports: list[int] = []
        self.processes: list[subprocess.Popen] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def __enter__(self) -> "WebServers":
        config = ROOT / "gunicorn.conf.py"
        for index in range(self.count):
            port = free_port()
            command = [sys.executable, "-m", "gunicorn", "gpuadmin.wsgi", "--bind", f"127.0.0.1:{port}"]
            command += ["--workers", str(self.workers)]
            if config.is_file():  # the repo's request limits and timeouts, as `make serve` runs it
                command += ["--config", str(config)]
            log = open(self.log_dir / f"web-{index}.log", "w") if self.log_dir else subprocess.DEVNULL  # noqa: SIM115
            self.processes.append(
                subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
            )
            self.ports.append(port)
        for url, process in zip(self.urls, self.processes, strict=True):
            wait_until(lambda url=url, process=process: _answers(url) or process.poll() is not None,
                       timeout=60, what=f"gunicorn at {url}")  # fmt: skip
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn at {url} exited at start")
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            stop_process(process)


def _answers(url: str) -> bool:
    try:
        requests.get(f"{url}/v4/regions", timeout=2)
    except requests.RequestException:
        return False
    return True


class Api:
    """Linode-style JSON calls with a personal access token; raises on nothing, returns the response."""

    def __init__(self, url: str, token: str, *, timeout: float = 30) -> None:
        self.url = url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(f"{self.url}{path}", timeout=self.timeout, **kwargs)

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.session.post(f"{self.url}{path}", json=body or {}, timeout=self.timeout)

    def delete(self, path: str) -> requests.Response:
        return self.session.delete(f"{self.url}{path}", timeout=self.timeout)


_READY = re.compile(r"(Process-\w+) ready for work at (\d+)")
_PROCESSING = re.compile(r"(Process-\w+) processing (job-\d+) ")


def worker_pids(logs: list[str]) -> dict[str, list[int]]:
    """For each job task name ("job-5"), the pids of the worker processes that picked it up, in order."""
    pids: dict[str, int] = {}
    runs: dict[str, list[int]] = {}
    for text in logs:
        for line in text.splitlines():
            if ready := _READY.search(line):
                pids[ready.group(1)] = int(ready.group(2))
            elif processing := _PROCESSING.search(line):
                runs.setdefault(processing.group(2), []).append(pids.get(processing.group(1), -1))
    return runs


class Deployment:
    """The whole thing on one machine: the hypervisor service, `servers` gunicorn servers and `clusters`
    qcluster clusters, all with `env` (database, Redis) plus the service's socket. Stopped in reverse."""

    def __init__(
        self, *, env: dict[str, str], servers: int = 2, clusters: int = 2, log_dir: Path | None = None
    ):
        self.base_env = env
        self.server_count = servers
        self.cluster_count = clusters
        self.log_dir = log_dir
        self.env: dict[str, str] = {}

    def __enter__(self) -> "Deployment":
        from benchmarks.cluster import WorkerClusters

        self.service = HypervisorService().__enter__()
        self.env = {**self.base_env, "GPUADMIN_HYPERVISOR_SOCKET": str(self.service.socket)}
        try:
            self.servers = WebServers(count=self.server_count, env=self.env, log_dir=self.log_dir).__enter__()
            self.clusters = WorkerClusters(count=self.cluster_count, env=self.env, log_dir=self.log_dir)
            self.clusters.__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for part in ("clusters", "servers", "service"):
            if hasattr(self, part):
                getattr(self, part).__exit__(None, None, None)

    @property
    def urls(self) -> list[str]:
        return self.servers.urls

    def audit(self) -> subprocess.CompletedProcess:
        """manage.py audit_fleet against the live deployment (the domains as the service holds them)."""
        from benchmarks.cluster import manage

        return manage("audit_fleet", env=self.env, check=False)
