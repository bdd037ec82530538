"""Start and stop django-q2 worker clusters as separate processes, for tests and benchmarks."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for a PostgreSQL connection's settings (the test database included)."""
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings_dict['NAME']}"


def project_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GPUADMIN_") and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "gpuadmin.settings",
            "GPUADMIN_SECRET_KEY": "worker-cluster-secret-key-for-tests-and-benchmarks",
            "GPUADMIN_JOB_BACKOFF_SECONDS": "0.2",
            "GPUADMIN_LOG_LEVEL": "WARNING",
        }
    )
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=check
    )


class WorkerClusters:
    """`count` qcluster processes sharing one broker, stopped (TERM, then KILL) on exit."""

    def __init__(
        self, *, count: int, env: dict[str, str], workers: int = 2, log_dir: Path | None = None
    ) -> None:
        self.count = count
        self.env = {**env, "GPUADMIN_Q_WORKERS": str(workers)}
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "WorkerClusters":
        for index in range(self.count):
            log = open(self.log_dir / f"cluster-{index}.log", "w") if self.log_dir else subprocess.DEVNULL  # noqa: SIM115
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def kill(self) -> None:
        """kill -9 every process of every cluster (the cluster and its workers): a machine that dies."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def alive(self) -> bool:
        return all(process.poll() is None for process in self.processes)


def cpu_seconds(pid: int, *, waited_children: bool = False) -> float:
    """User + system CPU of process `pid` so far (0 for a process that is gone); with
    `waited_children`, that of the children it has waited for too."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = fields[11:15] if waited_children else fields[11:13]
    return sum(int(field) for field in ticks) / os.sysconf("SC_CLK_TCK")
