"""What /healthz checks: the database, the task broker, the workers' heartbeat, and a sample of hosts'
libvirt. Each check is bounded in time; together they answer within a few timeouts, never hang.
"""

import time
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from gpuadmin.models import WorkerHeartbeat
from gpuadmin.services import HEARTBEAT
from hypervisor.connection import probe
from inventory.models import Host

OK, DEGRADED, DOWN = "ok", "degraded", "down"


@dataclass
class Part:
    status: str
    detail: dict = field(default_factory=dict)


@dataclass
class Health:
    parts: dict[str, Part]
    required: list[str]

    @property
    def status(self) -> str:
        if any(self.parts[name].status == DOWN for name in self.required):
            return DOWN
        return OK if all(part.status == OK for part in self.parts.values()) else DEGRADED

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "parts": {
                name: {"status": part.status, "required": name in self.required, **part.detail}
                for name, part in self.parts.items()
            },
        }


def health_check() -> Health:
    checks = {"database": database, "broker": broker, "workers": workers, "libvirt": libvirt_sample}
    return Health(
        parts={name: check() for name, check in checks.items()}, required=settings.GPUADMIN_HEALTH_REQUIRED
    )


def _failed(exc: Exception) -> Part:
    # The kind of failure only: messages can hold addresses and user names.
    return Part(DOWN, {"error": type(exc).__name__})


def database() -> Part:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return _failed(exc)
    return Part(OK, {"latency_ms": round((time.perf_counter() - started) * 1000, 1)})


_redis_clients: dict[str, redis.Redis] = {}


def redis_client(url: str) -> redis.Redis:
    """A client that gives up within the health timeout (django-q's own would wait for the OS)."""
    if url not in _redis_clients:
        timeout = settings.GPUADMIN_HEALTH_TIMEOUT_SECONDS
        _redis_clients[url] = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
    return _redis_clients[url]


def queue_key() -> str:
    return f"django_q:{settings.Q_CLUSTER['name']}:q"  # django_q.brokers.redis_broker.Redis's list


def queued_tasks() -> int:
    """Tasks waiting in the broker. Raises when the broker cannot be read."""
    if settings.REDIS_URL:
        return int(redis_client(settings.REDIS_URL).llen(queue_key()))
    from django_q.models import OrmQ

    return OrmQ.objects.filter(key=settings.Q_CLUSTER["name"]).count()


def broker() -> Part:
    kind = "redis" if settings.REDIS_URL else "database"
    started = time.perf_counter()
    try:
        waiting = queued_tasks()
    except Exception as exc:
        return Part(DOWN, {"kind": kind, "error": type(exc).__name__})
    latency = round((time.perf_counter() - started) * 1000, 1)
    return Part(OK, {"kind": kind, "queued_tasks": waiting, "latency_ms": latency})


def heartbeat_age_seconds() -> float | None:
    """Seconds since a worker last ran the scheduled heartbeat; None if none ever did."""
    beat_at = WorkerHeartbeat.objects.filter(name=HEARTBEAT).values_list("beat_at", flat=True).first()
    return None if beat_at is None else max(0.0, (timezone.now() - beat_at).total_seconds())


def workers() -> Part:
    try:
        age = heartbeat_age_seconds()
    except Exception as exc:
        return _failed(exc)
    limit = settings.GPUADMIN_HEALTH_WORKER_MAX_AGE_SECONDS
    if age is None:
        return Part(DOWN, {"heartbeat_age_seconds": None, "max_age_seconds": limit})
    return Part(
        OK if age <= limit else DOWN, {"heartbeat_age_seconds": round(age, 1), "max_age_seconds": limit}
    )


def libvirt_sample() -> Part:
    """Ask a few hosts in service, picked at random each time, whether their libvirt answers."""
    try:
        hosts = list(
            Host.objects.exclude(state=Host.State.DISABLED)
            .order_by("?")
            .values_list("hostname", "libvirt_uri")[: settings.GPUADMIN_HEALTH_LIBVIRT_SAMPLE]
        )
    except Exception as exc:
        return _failed(exc)
    if not hosts:
        return Part(OK, {"sampled": 0, "reachable": 0, "unreachable": []})
    answers = probe([uri for _, uri in hosts], timeout=settings.GPUADMIN_HEALTH_TIMEOUT_SECONDS)
    unreachable = sorted(hostname for hostname, uri in hosts if answers[uri] is not None)
    status = OK if not unreachable else DOWN if len(unreachable) == len(hosts) else DEGRADED
    return Part(
        status,
        {"sampled": len(hosts), "reachable": len(hosts) - len(unreachable), "unreachable": unreachable},
    )
