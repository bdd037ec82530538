"""/healthz: a status per part, 503 only when a required part is down, every check bounded in time."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import timezone

from gpuadmin.models import WorkerHeartbeat
from gpuadmin.services import HEARTBEAT, heartbeat_record
from gpuadmin.tasks import heartbeat
from hypervisor.synthetic import standard_host
from inventory.models import Host
from inventory.services import host_create
from tests.builders import make_gpu_host, make_region

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("GPUADMIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SilentServer:
    """Accepts TCP connections and never says a word: a libvirt peer that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


def host_at(uri: str, hostname: str) -> Host:
    return host_create(
        region=make_region(), hostname=hostname, libvirt_uri=uri, kind=Host.Kind.STANDARD,
        description=standard_host(hostname),
    )  # fmt: skip


def test_healthy_everything_is_ok_with_200(client):
    make_gpu_host()
    assert heartbeat().startswith("heartbeat ")
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert {name: part["status"] for name, part in body["parts"].items()} == {
        "database": "ok", "broker": "ok", "workers": "ok", "libvirt": "ok",
    }  # fmt: skip
    assert body["parts"]["database"]["required"] and not body["parts"]["workers"]["required"]
    assert body["parts"]["workers"]["heartbeat_age_seconds"] < 5
    assert body["parts"]["libvirt"]["sampled"] == 1 and body["parts"]["libvirt"]["reachable"] == 1
    assert body["parts"]["broker"]["kind"] == "database"
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_stale_heartbeat_is_down_but_only_required_parts_make_it_503(client):
    heartbeat_record()
    WorkerHeartbeat.objects.filter(name=HEARTBEAT).update(beat_at=timezone.now() - timedelta(minutes=10))
    degraded = client.get("/healthz")
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["parts"]["workers"]["status"] == "down"
    with override_settings(GPUADMIN_HEALTH_REQUIRED=["database", "broker", "workers"]):
        down = client.get("/healthz")
    assert down.status_code == 503 and down.json()["status"] == "down"
    assert down.json()["parts"]["workers"]["required"] is True


def test_no_heartbeat_ever_is_down(client):
    body = client.get("/healthz").json()
    assert body["parts"]["workers"] == {
        "status": "down", "required": False, "heartbeat_age_seconds": None, "max_age_seconds": 180,
    }  # fmt: skip


def test_a_redis_broker_on_a_closed_port_is_down_and_503_fast(client):
    started = time.monotonic()
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["parts"]["broker"] == {
        "status": "down", "required": True, "kind": "redis", "error": "ConnectionError",
    }  # fmt: skip
    assert time.monotonic() - started < 5


def test_a_live_redis_broker_is_ok_and_counts_its_queue(client):
    import redis

    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip("needs Redis on 127.0.0.1:6379 (CI has it)")
    with override_settings(REDIS_URL=REDIS_URL):
        part = client.get("/healthz").json()["parts"]["broker"]
    assert part["status"] == "ok" and part["kind"] == "redis" and isinstance(part["queued_tasks"], int)


def test_a_hanging_libvirt_host_is_reported_within_the_timeout_and_not_asked_twice_at_once(client):
    silent = SilentServer()
    try:
        host_at(f"qemu+tcp://127.0.0.1:{silent.port}/system", "hangs-1")
        host_at(f"qemu+tcp://127.0.0.1:{closed_port()}/system", "refuses-1")
        make_gpu_host(hostname="answers-1")
        with override_settings(GPUADMIN_HEALTH_TIMEOUT_SECONDS=0.5, GPUADMIN_HEALTH_LIBVIRT_SAMPLE=10):
            started = time.monotonic()
            response = client.get("/healthz")
            took = time.monotonic() - started
            again = client.get("/healthz").json()["parts"]["libvirt"]
    finally:
        silent.close()
    assert took < 3, took
    assert response.status_code == 200  # libvirt is not a required part by default
    part = response.json()["parts"]["libvirt"]
    assert part == {
        "status": "degraded", "required": False, "sampled": 3, "reachable": 1,
        "unreachable": ["hangs-1", "refuses-1"],
    }  # fmt: skip
    assert again["unreachable"] == ["hangs-1", "refuses-1"]


def test_disabled_hosts_are_not_sampled(client):
    host = host_at(f"qemu+tcp://127.0.0.1:{closed_port()}/system", "retired-1")
    Host.objects.filter(pk=host.pk).update(state=Host.State.DISABLED)
    assert client.get("/healthz").json()["parts"]["libvirt"]["sampled"] == 0


def test_a_database_on_a_closed_port_is_503(tmp_path):
    """The whole server pointed at a PostgreSQL that is not there: database down, answered at once."""
    script = (
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "r = Client(HTTP_HOST='localhost').get('/healthz')\n"
        "print(r.status_code, r.content.decode())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUADMIN_") and k != "DATABASE_URL"}
    env.update(
        DJANGO_SETTINGS_MODULE="gpuadmin.settings",
        GPUADMIN_SECRET_KEY="health-test-" + "k" * 50,
        GPUADMIN_ALLOWED_HOSTS="localhost",
        DATABASE_URL=f"postgres://gpuadmin@127.0.0.1:{closed_port()}/gpuadmin",
        GPUADMIN_VAR_DIR=str(tmp_path),
        GPUADMIN_LOG_LEVEL="CRITICAL",
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    status, _, body = result.stdout.strip().partition(" ")
    assert status == "503", result.stdout
    parts = json.loads(body)["parts"]
    assert parts["database"] == {"status": "down", "required": True, "error": "OperationalError"}
    assert parts["broker"]["status"] == "down"  # the ORM broker is that database
    assert time.monotonic() - started < 30
