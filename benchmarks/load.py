"""A mixed API workload from a process of its own: list, view, create, power and delete instances.

    python -m benchmarks.load --url http://127.0.0.1:8001 --url http://127.0.0.1:8002 --token T \\
        --duration 120 --users 6 --region us-east --plan g1-gpu-rtx6000-1 --image linode/ubuntu22.04

Each simulated user (a thread with its own HTTP session, taking the servers in turn) picks an action by
weight, on the instances it created: listing and viewing most, then creates, power actions (shutdown,
boot, reboot) and deletes, with no pause between requests. It prints one JSON object: requests,
throughput, p50/p99 latency overall and per action, and the answers that were not 2xx by status with a
sample reason. 4xx answers are part of the game (a power action on a busy instance is "Linode busy.", a
create past capacity is refused); a 5xx or a broken connection is a bug. Stdlib and requests only.
"""

import argparse
import json
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import requests

WEIGHTS = {"list": 30, "view": 30, "create": 14, "power": 16, "delete": 10}
POWER_ACTIONS = ("shutdown", "boot", "reboot")
ROOT_PASS = "Load-Test-Pass-1234!"


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    reasons: dict[str, str] = field(default_factory=dict)  # "create 400" -> first reason seen
    transport_errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, action: str, seconds: float, response: requests.Response) -> None:
        with self.lock:
            self.latencies[action].append(seconds)
            self.statuses[action][response.status_code] += 1
            if response.status_code >= 300:
                self.reasons.setdefault(f"{action} {response.status_code}", _reason(response))

    def broken(self, action: str, exc: Exception) -> None:
        with self.lock:
            self.transport_errors[f"{action}: {type(exc).__name__}"] += 1


class SimulatedUser(threading.Thread):
    def __init__(self, number: int, options: argparse.Namespace, tally: Tally, deadline: float) -> None:
        super().__init__(name=f"load-user-{number}", daemon=True)
        self.number = number
        self.options = options
        self.tally = tally
        self.deadline = deadline
        self.random = random.Random(options.seed * 1000 + number)
        self.session = requests.Session()
        self.session.headers.update(
            {"Authorization": f"Bearer {options.token}", "Content-Type": "application/json"}
        )
        self.own: list[int] = []
        self.created = 0
        self.turn = number

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            action = self.random.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
            if action in ("view", "power", "delete") and not self.own:
                action = "create"
            if action == "create" and len(self.own) >= self.options.max_instances_per_user:
                action = "power"
            getattr(self, f"do_{action}")()

    def call(self, action: str, method: str, path: str, body: dict | None = None) -> requests.Response | None:
        self.turn += 1
        url = self.options.url[self.turn % len(self.options.url)] + path
        started = time.monotonic()
        try:
            response = self.session.request(method, url, json=body, timeout=self.options.timeout)
        except requests.RequestException as exc:
            self.tally.broken(action, exc)
            return None
        self.tally.record(action, time.monotonic() - started, response)
        return response

    def do_list(self) -> None:
        self.call("list", "GET", "/v4/linode/instances?page_size=100")

    def do_view(self) -> None:
        self.call("view", "GET", f"/v4/linode/instances/{self.random.choice(self.own)}")

    def do_create(self) -> None:
        self.created += 1
        body = {
            "type": self.random.choice(self.options.plan),
            "region": self.options.region,
            "image": self.options.image,
            "root_pass": ROOT_PASS,
            "label": f"{self.options.label_prefix}-{self.number}-{self.created}",
        }
        response = self.call("create", "POST", "/v4/linode/instances", body)
        if response is not None and response.status_code == 200:
            self.own.append(response.json()["id"])

    def do_power(self) -> None:
        action = self.random.choice(POWER_ACTIONS)
        self.call("power", "POST", f"/v4/linode/instances/{self.random.choice(self.own)}/{action}")

    def do_delete(self) -> None:
        instance_id = self.random.choice(self.own)
        response = self.call("delete", "DELETE", f"/v4/linode/instances/{instance_id}")
        if response is not None and response.status_code in (200, 404):
            self.own.remove(instance_id)


def run(options: argparse.Namespace) -> dict:
    tally = Tally()
    started = time.monotonic()
    users = [SimulatedUser(n, options, tally, started + options.duration) for n in range(options.users)]
    for user in users:
        user.start()
    for user in users:
        user.join()
    elapsed = time.monotonic() - started
    every = [seconds for values in tally.latencies.values() for seconds in values]
    statuses = Counter()
    for counts in tally.statuses.values():
        statuses.update(counts)
    return {
        "duration_s": round(elapsed, 1),
        "users": options.users,
        "servers": len(options.url),
        "requests": len(every),
        "throughput_rps": round(len(every) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": _ms(percentile(every, 0.50)),
        "p99_ms": _ms(percentile(every, 0.99)),
        "server_errors": sum(n for status, n in statuses.items() if status >= 500),
        "transport_errors": sum(tally.transport_errors.values()),
        "statuses": {str(status): n for status, n in sorted(statuses.items())},
        "actions": {
            action: {
                "requests": len(values),
                "p50_ms": _ms(percentile(values, 0.50)),
                "p99_ms": _ms(percentile(values, 0.99)),
                "statuses": {str(s): n for s, n in sorted(tally.statuses[action].items())},
            }
            for action, values in sorted(tally.latencies.items())
        },
        "not_ok_reasons": dict(sorted(tally.reasons.items())),
        "transport_error_kinds": dict(tally.transport_errors),
        "instances_left": sorted(i for user in users for i in user.own),
    }


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _reason(response: requests.Response) -> str:
    try:
        return response.json()["errors"][0]["reason"][:200]
    except (ValueError, KeyError, IndexError, TypeError):
        return response.text[:200]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--url", action="append", required=True, help="a server (repeat for several)")
    parser.add_argument("--token", required=True, help="a personal access token with linodes:read_write")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--users", type=int, default=6, help="simulated users, each a thread")
    parser.add_argument("--region", required=True)
    parser.add_argument("--plan", action="append", required=True, help="a plan to create (repeat)")
    parser.add_argument("--image", required=True)
    parser.add_argument("--max-instances-per-user", type=int, default=3)
    parser.add_argument("--label-prefix", default="load")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take")
    parser.add_argument("--seed", type=int, default=1)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.stdout.write(json.dumps(run(parse(sys.argv[1:]))) + "\n")
