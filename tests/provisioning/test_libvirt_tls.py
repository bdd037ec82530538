"""Remote libvirt over TLS: a host enrolled as qemu+tls://127.0.0.1:<port>/system, with certificates made
at test time, boots a guest; and when it stops answering mid-job, keepalive and the open timeout turn
the hang into errors the job retries, then rolls back.

The libvirtd is one of the test's own (tests/libvirtd_tls.py): a private mount namespace beside the
system libvirtd, so freezing it disturbs no one. Outside CI the tests skip where that cannot run; in CI
(CI=true) they fail instead.
"""

import logging
import os
from dataclasses import replace

import libvirt
import pytest
from django.test import override_settings

from benchmarks.stack import free_port
from hypervisor import connection
from hypervisor.connection import connect
from hypervisor.errors import PermanentHypervisorError
from hypervisor.lifecycle import (
    Outcome,
    domain_state,
    ensure_absent,
    ensure_defined,
    ensure_running,
    ensure_volume,
    list_managed_domains,
)
from hypervisor.seed import build_seed_iso, ensure_seed
from hypervisor.spec import STORAGE_POOL, NetworkSpec, image_volume_name, mac_for_instance
from inventory.models import Host, HostCpu
from inventory.sync import host_enroll
from provisioning.domain_spec import domain_spec_for
from provisioning.driver import HostDriver
from provisioning.models import Instance, Job
from tests.builders import make_allocation, make_image, make_instance, make_region, make_standard_plan, unique
from tests.libvirtd_tls import Pki, TlsLibvirtd, why_not_available
from tests.provisioning.helpers import create

pytestmark = [pytest.mark.django_db, pytest.mark.libvirtd]

# This machine: one core per node for the host and the emulator, the rest (one vCPU here) for guests.
SMALL_HOST = {"GPUADMIN_RESERVED_CORES_PER_NODE": 1, "GPUADMIN_RESERVED_MEMORY_MIB_PER_NODE": 512}


@pytest.fixture
def tls_libvirtd():
    reason = why_not_available()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the TLS libvirtd test: {reason}")
        pytest.skip(reason)
    daemon = TlsLibvirtd(port=free_port()).start()
    try:
        daemon.wait_ready()
        yield daemon
    finally:
        connection.default_pool.close_all()
        _remove_guests(daemon)
        daemon.stop()


@pytest.fixture
def image_pool(tls_libvirtd):
    """The host's image pool (a directory in the daemon's own tree) holding one small image."""
    image = make_image()
    conn = libvirt.open(tls_libvirtd.uri)
    path = tls_libvirtd.directory / "images"
    path.mkdir()
    pool = conn.storagePoolCreateXML(
        f"<pool type='dir'><name>{STORAGE_POOL}</name><target><path>{path}</path></target></pool>", 0
    )
    pool.createXML(
        f"<volume><name>{image_volume_name(image.pk)}</name><capacity unit='MiB'>64</capacity>"
        "<target><format type='qcow2'/></target></volume>",
        0,
    )
    conn.close()
    return image


@override_settings(**SMALL_HOST)
def test_a_host_enrolled_over_tls_is_discovered_and_boots_a_guest(tls_libvirtd, image_pool):
    host, _ = host_enroll(
        region=make_region(),
        hostname=unique("tls-host"),
        libvirt_uri=tls_libvirtd.uri,
        kind=Host.Kind.STANDARD,
    )
    assert HostCpu.objects.filter(host=host).count() == os.cpu_count()  # the topology came over TLS
    conn = connect(host.libvirt_uri)
    assert conn.getURI().startswith("qemu+tls://127.0.0.1:")

    instance = make_instance(plan=make_standard_plan(1), image=image_pool)
    allocation = make_allocation(
        instance=instance, host=host, gpus=0, vcpus=1, memory_mib=128, hugepages=False
    )
    spec = domain_spec_for(
        instance=instance,
        allocation=allocation,
        include_gpus=False,
        network=NetworkSpec("user", "", mac_for_instance(instance.pk)),  # no libvirt network on this host
        domain_type="qemu",  # TCG: runs wherever QEMU does
    )
    spec = replace(spec, disk=replace(spec.disk, capacity_mib=128))
    try:
        assert ensure_volume(conn, spec.disk) == Outcome.CREATED
        # The seed goes over TLS through the volume upload stream, and is read back the same way.
        assert ensure_seed(conn, spec.seed, build_seed_iso(spec.seed)) == Outcome.CREATED
        assert ensure_seed(conn, spec.seed, build_seed_iso(spec.seed)) == Outcome.ALREADY
        assert ensure_defined(conn, spec) == Outcome.CREATED
        assert ensure_running(conn, spec.uuid) == Outcome.STARTED
        assert domain_state(conn, spec.uuid) == "running"
        assert (spec.uuid, instance.pk, "running") in list_managed_domains(conn)
    finally:
        assert ensure_absent(conn, spec.uuid, disk=spec.disk, seeds_of=instance.pk) == Outcome.REMOVED
    assert domain_state(conn, spec.uuid) is None
    assert spec.seed.volume not in conn.storagePoolLookupByName(spec.seed.pool).listVolumes()


def test_a_client_whose_certificate_another_ca_signed_is_refused(tls_libvirtd):
    stranger = Pki(tls_libvirtd.directory / "stranger")
    uri = tls_libvirtd.uri.replace(str(tls_libvirtd.pki.client_dir), str(stranger.client_dir))
    with pytest.raises(PermanentHypervisorError):
        connect(uri)


@pytest.fixture
def fast_link_checks():
    """Keepalive every second, two misses; opens give up after 3 s (production: 5 s x 3, 15 s)."""
    pool = connection.default_pool
    saved = (pool.open_timeout, pool.keepalive_interval, pool.keepalive_count)
    connection.configure(open_timeout=3, keepalive_interval=1, keepalive_count=2)
    yield
    connection.configure(open_timeout=saved[0], keepalive_interval=saved[1], keepalive_count=saved[2])


@override_settings(**SMALL_HOST, GPUADMIN_JOB_MAX_ATTEMPTS=3)
def test_a_host_that_stops_answering_mid_create_fails_the_job_after_its_retries_and_rolls_back(
    tls_libvirtd, image_pool, fast_link_checks, employee, run_tasks, monkeypatch, caplog
):
    region = make_region()
    host, _ = host_enroll(
        region=region, hostname=unique("tls-host"), libvirt_uri=tls_libvirtd.uri, kind=Host.Kind.STANDARD
    )
    define = HostDriver.ensure_defined

    def freeze_then_define(driver, instance, allocation):
        tls_libvirtd.freeze()  # the volume is made; the host stops answering before the domain is
        return define(driver, instance, allocation)

    monkeypatch.setattr(HostDriver, "ensure_defined", freeze_then_define)
    with caplog.at_level(logging.WARNING, logger="provisioning.workflows"):
        instance = run_tasks(
            create, user=employee, plan=make_standard_plan(1), region=region, image=image_pool
        )

    job = Job.objects.get(instance=instance)
    instance.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.FAILED, 5)  # 3 to create, 2 more to remove
    assert "gave up after 3 attempts" in job.error
    assert "removing the domain also failed" in job.error  # the host is still silent: reconcile reports it
    assert instance.status == Instance.Status.FAILED
    assert not instance.allocations.filter(released_at__isnull=True).exists()
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 4  # create: after attempts 1 and 2; removing the domain: likewise
    assert "keepalive" in retries[0]  # the call in flight on the frozen host was cut by keepalive
    assert "no answer within 3 s while connecting" in retries[1]  # the reconnect by the open timeout

    tls_libvirtd.thaw()  # the host answers again: nothing of the failed create is left running on it
    conn = libvirt.open(tls_libvirtd.uri)
    assert [d.isActive() for d in conn.listAllDomains(0)] in ([], [0])
    conn.close()


def _remove_guests(daemon: TlsLibvirtd) -> None:
    try:
        daemon.thaw()
        conn = libvirt.open(daemon.uri)
    except (OSError, libvirt.libvirtError):
        return
    for domain in conn.listAllDomains(0):
        if domain.isActive():
            domain.destroy()
        domain.undefine()
    conn.close()
