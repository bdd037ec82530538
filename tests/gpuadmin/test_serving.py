"""The production stack as `make serve` runs it: scripts/serve (collectstatic, then gunicorn with the
repo's gunicorn.conf.py and debug off), a qcluster beside it, the demo seeded on SQLite.

Checked at the far end: the admin's CSS as a browser gets it, the JSON lines gunicorn and the worker
write, /metrics adding up several gunicorn workers, /healthz once the scheduled heartbeat ran.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
WEB_WORKERS = 3

pytestmark = pytest.mark.live


@dataclass
class Stack:
    base: str
    token: str
    var_dir: Path
    web_out: Path
    web_err: Path
    worker_log: Path

    def request(self, path: str, *, method: str = "GET", body=None, headers: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json", **(headers or {})}
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def api(self, path: str, **kwargs):
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        status, headers, body = self.request(path, headers=headers, **kwargs)
        return status, headers, json.loads(body)


def json_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))  # a line that is not one JSON object fails the test here
    return lines


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(*processes: subprocess.Popen) -> None:
    """TERM to each main process (qcluster stops its own children; a TERM to all of them at once makes it
    hang), then KILL each process group still there after 20 s."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 20
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GPUADMIN_") and k not in ("DATABASE_URL",)
    }
    env.update(
        DJANGO_SETTINGS_MODULE="gpuadmin.settings",
        GPUADMIN_SECRET_KEY="serve-test-" + "k" * 50,
        GPUADMIN_ALLOWED_HOSTS="127.0.0.1,localhost",
        GPUADMIN_VAR_DIR=str(var_dir),
        GPUADMIN_BIND=f"127.0.0.1:{port}",
        GPUADMIN_WEB_WORKERS=str(WEB_WORKERS),
        GPUADMIN_Q_NAME=f"serve-test-{port}",
        GPUADMIN_JOB_BACKOFF_SECONDS="0.2",
        PYTHON=sys.executable,
    )
    manage = [sys.executable, "manage.py"]
    for args in (["migrate", "--noinput", "-v", "0"], ["seed_demo", "--quiet-logins"]):
        subprocess.run(manage + args, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    token = subprocess.run(
        manage + ["create_api_token", "alice"], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    paths = {name: var_dir / f"{name}.log" for name in ("web-out", "web-err", "worker")}
    with (
        open(paths["web-out"], "w") as web_out,
        open(paths["web-err"], "w") as web_err,
        open(paths["worker"], "w") as worker_log,
    ):
        web = subprocess.Popen(
            [str(ROOT / "scripts" / "serve")], cwd=ROOT, env=env, stdout=web_out, stderr=web_err,
            start_new_session=True,
        )  # fmt: skip
        worker = subprocess.Popen(
            manage + ["qcluster"], cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    made = Stack(
        f"http://127.0.0.1:{port}", token, var_dir, paths["web-out"], paths["web-err"], paths["worker"]
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert web.poll() is None, paths["web-err"].read_text()[-3000:]
            try:
                if made.request("/healthz")[0] in (200, 503):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer"
            time.sleep(0.3)
        yield made
    finally:
        stop(web, worker)


def test_the_admin_css_comes_from_whitenoise_hashed_compressed_and_cached_for_ever(stack):
    status, _, page = stack.request("/admin/login/")
    assert status == 200
    href = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
    assert href, page[:2000]  # the manifest storage put a content hash in the name
    status, headers, css = stack.request(href.group(1).decode())
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert "max-age=315360000" in headers["Cache-Control"] and "immutable" in headers["Cache-Control"]
    assert b"body" in css
    status, headers, _ = stack.request(href.group(1).decode(), headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    status, headers, _ = stack.request("/static/admin/css/base.css")  # the unhashed name: short cache
    assert status == 200 and "max-age=60" in headers["Cache-Control"]


def test_a_request_id_reaches_the_access_log_and_the_workers_job_lines(stack):
    request_id = f"serve-test-{time.time_ns()}"
    body = {"type": "g1-gpu-rtx6000-1", "region": "us-east", "image": "linode/ubuntu22.04",
            "root_pass": "Corr3ct-Horse-Battery", "label": "serve-rid-1"}  # fmt: skip
    status, headers, linode = stack.api(
        "/v4/linode/instances", method="POST", body=body, headers={"X-Request-ID": request_id}
    )
    assert status == 200, linode
    assert headers["X-Request-ID"] == request_id
    deadline = time.monotonic() + 90
    while linode["status"] != "running":
        assert time.monotonic() < deadline, (linode, stack.worker_log.read_text()[-3000:])
        time.sleep(0.5)
        linode = stack.api(f"/v4/linode/instances/{linode['id']}")[2]
    access = [line for line in json_lines(stack.web_out) if line["logger"] == "gunicorn.access"]
    mine = [line for line in access if line["request_id"] == request_id]
    assert len(mine) == 1, access[-5:]
    assert (mine[0]["method"], mine[0]["path"], mine[0]["status"]) == ("POST", "/v4/linode/instances", 200)
    assert isinstance(mine[0]["duration_ms"], int) and mine[0]["level"] == "INFO"
    job_lines = [line for line in json_lines(stack.worker_log) if line.get("request_id") == request_id]
    assert job_lines, stack.worker_log.read_text()[-3000:]
    assert {(line["instance_id"], line["logger"].split(".")[0]) for line in job_lines} == {
        (linode["id"], "provisioning")
    }
    assert len({line["job_id"] for line in job_lines}) == 1
    assert any(line["message"].endswith("finished") for line in job_lines)


def request_count(stack, view: str) -> float:
    status, _, text = stack.request("/metrics")
    assert status == 200
    total = 0.0
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if (
                sample.name == "gpuadmin_http_request_duration_seconds_count"
                and sample.labels["view"] == view
            ):
                total += sample.value
    return total


def test_metrics_add_up_every_gunicorn_worker(stack):
    before = request_count(stack, "v4:types")
    for _ in range(40):
        assert stack.request("/v4/linode/types")[0] == 200  # a new connection each: any worker answers
    served_by = {p.name for p in (stack.var_dir / "metrics").glob("web-*/histogram_*.db")}
    assert len(served_by) >= 2, served_by  # several processes wrote samples
    # Whichever worker answers the scrape, it reports all 40.
    assert {request_count(stack, "v4:types") - before for _ in range(6)} == {40}


def test_healthz_is_ok_once_a_worker_ran_the_scheduled_heartbeat(stack):
    deadline = time.monotonic() + 90  # django-q's scheduler looks at schedules every 30 s
    while True:
        status, headers, body = stack.request("/healthz")
        parts = json.loads(body)["parts"]
        if parts["workers"]["status"] == "ok":
            break
        assert time.monotonic() < deadline, (parts, stack.worker_log.read_text()[-2000:])
        time.sleep(1)
    assert status == 200 and len(headers["X-Request-ID"]) == 32
    assert {name: part["status"] for name, part in parts.items()} == {
        "database": "ok", "broker": "ok", "workers": "ok", "libvirt": "ok",
    }  # fmt: skip
