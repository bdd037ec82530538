"""The hypervisor service: one process holding the simulated hosts, called by name from other processes."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import libvirt
import pytest

from hypervisor import lifecycle, routing, volumes
from hypervisor.connection import connect
from hypervisor.discovery import describe_host, discover
from hypervisor.errors import DiscoveryError, PermanentHypervisorError, TransientHypervisorError
from hypervisor.lifecycle import Outcome
from hypervisor.profiles import RTX6000_2X2, profile_uri, synthetic_uri
from hypervisor.service.client import ServiceClient
from hypervisor.service.protocol import authkey_path
from tests.hypervisor.test_lifecycle import spec_for

ROOT = Path(__file__).resolve().parents[2]


class Service:
    """`python -m hypervisor.service` in a process of its own, as scripts/run-demo starts it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket = directory / "hv.sock"  # short: a unix socket path has at most 107 bytes
        self.ready = directory / "hv.ready"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Service":
        self.ready.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hypervisor.service", "--socket", str(self.socket),
             "--state-dir", str(self.directory / "state"), "--ready-file", str(self.ready)],
            cwd=ROOT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not self.ready.exists():
            assert self.process.poll() is None, "the hypervisor service exited at start"
            assert time.monotonic() < deadline, "the hypervisor service did not get ready"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)


@pytest.fixture
def service():
    directory = Path(tempfile.mkdtemp(prefix="hvs-"))
    started = Service(directory).start()
    routing.use_service(str(started.socket))
    yield started
    routing.use_service(None)
    started.stop()
    shutil.rmtree(directory, ignore_errors=True)


def uri_for(request) -> str:
    return profile_uri(RTX6000_2X2, f"{request.node.name}-{os.getpid()}")


def test_another_process_sees_the_guest_this_one_built_through_the_service(service, request):
    uri = uri_for(request)
    spec = spec_for()
    assert routing.on_host(uri, lifecycle.ensure_volume, spec.disk) == Outcome.CREATED
    assert routing.on_host(uri, lifecycle.ensure_defined, spec) == Outcome.CREATED
    assert routing.on_host(uri, lifecycle.ensure_running, spec.uuid) == Outcome.STARTED

    other = _python(
        f"""
        from hypervisor import lifecycle, routing, volumes
        routing.use_service({str(service.socket)!r})
        print(routing.on_host({uri!r}, lifecycle.list_managed_domains))
        print(routing.on_host({uri!r}, lifecycle.ensure_shut_off, {spec.uuid!r}))
        """
    )
    assert other == [str([lifecycle.ManagedDomain(spec.uuid, spec.instance_id, "running")]), "shut down"]
    assert routing.on_host(uri, lifecycle.domain_state, spec.uuid) == "shut off"
    # The state is in the service, not in this process: its own test driver never saw the guest.
    assert lifecycle.domain_state(connect(uri), spec.uuid) is None


def test_hypervisor_errors_come_back_as_the_same_class_with_code_step_and_the_remote_traceback(
    service, request
):
    with pytest.raises(PermanentHypervisorError) as missing:
        routing.on_host(uri_for(request), lifecycle.ensure_running, "7b2e8f30-0000-4000-8000-000000000001")
    assert missing.value.code == libvirt.VIR_ERR_NO_DOMAIN
    assert missing.value.step == "start"
    assert "is not defined; define it first" in str(missing.value)
    assert any("raised in the hypervisor service" in note for note in missing.value.__notes__)

    with pytest.raises(DiscoveryError, match="no hardware"):
        discover(synthetic_uri(request.node.name), hostname="synthetic")


def test_discovery_of_a_simulated_host_runs_in_the_service_and_reads_the_same_topology(service, request):
    uri = uri_for(request)
    assert discover(uri, hostname="h") == describe_host(connect(uri), hostname="h")


def test_a_volume_copy_between_two_simulated_hosts_runs_in_the_service_with_both(service, request):
    source, target = uri_for(request), uri_for(request) + "-target"
    spec = spec_for()
    routing.on_host(source, lifecycle.ensure_volume, spec.disk)
    report = routing.on_hosts((source, target), volumes.copy_volume_between, spec.disk, spec.disk)
    assert report.outcome == Outcome.SIMULATED
    assert routing.on_host(target, lifecycle.ensure_volume, spec.disk) == Outcome.ALREADY  # it is there
    with pytest.raises(PermanentHypervisorError, match="a simulated host and a real one"):
        routing.on_hosts((source, "qemu:///system"), volumes.copy_volume_between, spec.disk, spec.disk)


def test_only_public_hypervisor_functions_on_simulated_hosts_can_be_called(service, request):
    for function in (os.getcwd, lifecycle._lookup, ServiceClient.close):
        with pytest.raises(PermanentHypervisorError, match="runs only public functions"):
            routing.on_host(uri_for(request), function)
    client = ServiceClient(str(service.socket))
    with pytest.raises(PermanentHypervisorError, match="simulated .* hosts only"):
        client.call("qemu:///system", lifecycle.list_managed_domains, (), {})


def test_a_caller_without_the_key_is_refused(service, request):
    authkey_path(service.socket).write_bytes(b"not the service's key")
    with pytest.raises(PermanentHypervisorError, match="refused us"):
        ServiceClient(str(service.socket)).call(uri_for(request), lifecycle.list_managed_domains, (), {})


def test_no_service_is_a_transient_error_and_a_restarted_one_is_found_again(service, request):
    uri = uri_for(request)
    spec = spec_for()
    routing.on_host(uri, lifecycle.ensure_volume, spec.disk)
    routing.on_host(uri, lifecycle.ensure_defined, spec)
    service.stop()
    with pytest.raises(TransientHypervisorError, match="hypervisor service"):
        routing.on_host(uri, lifecycle.list_managed_domains)

    service.start()  # same state directory: the host kept its guest (shut off, as it was defined)
    assert routing.on_host(uri, lifecycle.list_managed_domains) == [
        lifecycle.ManagedDomain(spec.uuid, spec.instance_id, "shut off")
    ]
    assert routing.on_host(uri, lifecycle.ensure_volume, spec.disk) == Outcome.ALREADY


def test_a_restarted_service_gives_each_host_back_its_guests_power_states_and_volumes(service, request):
    uri = uri_for(request)
    running, stopped = spec_for(), spec_for()
    for spec in (running, stopped):
        routing.on_host(uri, lifecycle.ensure_volume, spec.disk)
        routing.on_host(uri, lifecycle.ensure_defined, spec)
    routing.on_host(uri, lifecycle.ensure_running, running.uuid)

    service.stop()
    service.start()
    assert routing.on_host(uri, lifecycle.list_managed_domains) == sorted(
        [
            lifecycle.ManagedDomain(running.uuid, running.instance_id, "running"),
            lifecycle.ManagedDomain(stopped.uuid, stopped.instance_id, "shut off"),
        ],
        key=lambda d: d.instance_id,
    )
    for spec in (running, stopped):
        assert routing.on_host(uri, lifecycle.ensure_defined, spec) == Outcome.ALREADY  # same definition
        assert routing.on_host(uri, lifecycle.ensure_volume, spec.disk) == Outcome.ALREADY
    # Another host of the same profile starts from the profile, untouched by this one's guests.
    assert routing.on_host(uri + "-other", lifecycle.list_managed_domains) == []


def _python(code: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()
