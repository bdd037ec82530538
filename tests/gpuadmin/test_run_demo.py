"""`make run`'s own process layout is one world: the hypervisor service, a qcluster with 2 workers and the
web server, as scripts/run-demo starts them, on a SQLite database of their own.

libvirt's test driver keeps a host's guests in the process that opened it; before the hypervisor service,
a shutdown in one worker found the guest "already off" in the other, a boot there defined a second copy,
and the scheduled reconcile rebuilt "vanished" guests with boot jobs customers saw as their own events.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest

from benchmarks.cluster import ROOT, manage, project_env
from benchmarks.stack import Api, free_port, wait_until, worker_pids
from hypervisor import lifecycle
from hypervisor.service.client import ServiceClient

POWER_CYCLES = 8  # the two workers take turns at the queue: an off and an on in two of them come soon


class Demo:
    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.env = project_env(GPUADMIN_VAR_DIR=str(var_dir), GPUADMIN_DEBUG="1", GPUADMIN_LOG_LEVEL="INFO")
        self.env.pop("DATABASE_URL", None)  # the demo's SQLite in its var directory, as `make run` has it
        self.env.pop("GPUADMIN_SECRET_KEY")
        self.socket = var_dir / "hypervisor.sock"
        self.logs: list[Path] = []
        self.process: subprocess.Popen | None = None

    def prepare(self) -> str:
        """What `make run` does before scripts/run-demo; returns alice's API token."""
        manage("migrate", "--noinput", env=self.env)
        manage("seed_demo", "--quiet-logins", env=self.env)
        return manage("create_api_token", "alice", env=self.env).stdout.strip()

    def start(self) -> None:
        log = self.var_dir / f"run-demo-{len(self.logs)}.log"
        self.logs.append(log)
        with open(log, "w") as output:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "run-demo")],
                cwd=ROOT,
                env={**self.env, "PORT": str(self.port)},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """As a terminal's Ctrl-C: the signal reaches every process of the demo."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_text(self) -> list[str]:
        return [log.read_text() for log in self.logs]

    def rows(self, sql: str) -> list[tuple]:
        with sqlite3.connect(self.var_dir / "gpuadmin.sqlite3") as db:
            return db.execute(sql).fetchall()

    def domains(self) -> list[tuple[str, lifecycle.ManagedDomain]]:
        """Every gpuadmin domain on every demo host, as the hypervisor service holds them."""
        client = ServiceClient(str(self.socket))
        found = []
        for (uri,) in self.rows("SELECT libvirt_uri FROM inventory_host ORDER BY hostname"):
            found += [(uri, d) for d in client.call(uri, lifecycle.list_managed_domains, (), {})]
        client.close()
        return found

    def run_reconcile_task(self) -> str:
        """The scheduled reconcile, run by the demo's own worker as its schedule would."""
        script = (
            "from django_q.tasks import async_task, result\n"
            "task = async_task('provisioning.tasks.reconcile_all')\n"
            "print(result(task, wait=60000))\n"
        )
        return manage("shell", "-v", "0", "-c", script, env=self.env).stdout.strip()


@pytest.fixture
def demo():
    var_dir = Path(tempfile.mkdtemp(prefix="gpuadmin-demo-"))  # short: the socket lives here
    running = Demo(var_dir)
    yield running
    running.stop()
    shutil.rmtree(var_dir, ignore_errors=True)


def wait_for_status(api: Api, instance_id: int, status: str) -> None:
    wait_until(
        lambda: api.get(f"/v4/linode/instances/{instance_id}").json()["status"] == status,
        timeout=60,
        what=f"instance {instance_id} {status}",
    )


def test_the_demo_is_one_world_across_workers_and_restarts(demo):
    api = Api(f"http://127.0.0.1:{demo.port}", demo.prepare())
    demo.start()
    wait_until(lambda: _answers(api), timeout=60, what="the demo's web server")

    created = api.post(
        "/v4/linode/instances",
        {"type": "g1-gpu-rtx6000-1", "region": "us-east", "image": "linode/ubuntu22.04",
         "root_pass": "Demo-Pass-1234!", "label": "one-world"},
    )  # fmt: skip
    assert created.status_code == 200, created.text
    instance_id = created.json()["id"]
    wait_for_status(api, instance_id, "running")

    crossed = []  # (off job, on job): a shutdown run by one worker, the boot after it by the other
    for _ in range(POWER_CYCLES):
        for action, status in (("shutdown", "offline"), ("boot", "running")):
            assert api.post(f"/v4/linode/instances/{instance_id}/{action}").status_code == 200
            wait_for_status(api, instance_id, status)
        off, on = (
            f"job-{pk}"
            for (pk,) in demo.rows("SELECT id FROM provisioning_job ORDER BY id DESC LIMIT 2")[::-1]
        )
        pids = worker_pids(demo.log_text())
        if pids[off] != pids[on]:
            crossed.append((off, on, pids[off], pids[on]))
            break
    assert crossed, "every shutdown and the boot after it ran in the same worker process"

    log = "\n".join(demo.log_text())
    for off, on, _, _ in crossed:  # what each worker found on the host: the other one's work
        off_id, on_id = off.removeprefix("job-"), on.removeprefix("job-")
        assert f"job {off_id} step shutdown: shut down" in log
        assert f"job {on_id} step define: already" in log
        assert f"job {on_id} step start: started" in log

    [(uri, domain)] = demo.domains()  # exactly one domain, the instance's, running
    assert (domain.instance_id, domain.state) == (instance_id, "running")
    uuid = demo.rows(f"SELECT domain_uuid FROM provisioning_instance WHERE id = {instance_id}")[0][0]
    assert domain.uuid.replace("-", "") == str(uuid).replace("-", "")

    jobs_before = demo.rows("SELECT COUNT(*) FROM provisioning_job")
    events_before = api.get("/v4/account/events").json()["results"]
    assert demo.run_reconcile_task() == "reconciled 20 hosts: 0 findings, 0 jobs resumed"

    demo.stop()  # a restarted demo finds its hosts as it left them
    demo.start()
    wait_until(lambda: _answers(api), timeout=60, what="the restarted demo's web server")
    assert [d for _, d in demo.domains()] == [domain]
    assert demo.run_reconcile_task() == "reconciled 20 hosts: 0 findings, 0 jobs resumed"
    assert demo.rows("SELECT COUNT(*) FROM provisioning_job") == jobs_before
    assert api.get("/v4/account/events").json()["results"] == events_before
    assert api.get(f"/v4/linode/instances/{instance_id}").json()["status"] == "running"


def _answers(api: Api) -> bool:
    try:
        return api.get("/v4/regions").status_code == 200
    except OSError:
        return False
