"""/metrics: Prometheus' text format, numbers from the database, no account data, and who may read it."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from accounts.services import account_create, api_token_create
from inventory.fleet import fleet_seed
from inventory.models import GpuDevice, Host
from inventory.services import gpu_mark_faulty, host_record_libvirt_error
from provisioning.models import Job
from tests.builders import (
    make_allocation,
    make_gpu_host,
    make_gpu_plan,
    make_instance,
    make_region,
    make_user,
)

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789"


def samples(response) -> dict[tuple, float]:
    """{(sample name, (label, value), ...): value} from a text exposition."""
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def job(
    instance, action: str, status: str, seconds: float | None = None, age: timedelta = timedelta()
) -> Job:
    now = timezone.now()
    made = Job.objects.create(instance=instance, account_id=instance.account_id, action=action, status=status)
    started = now - timedelta(seconds=seconds or 0) if seconds is not None else None
    Job.objects.filter(pk=made.pk).update(
        created=now - age, started=started, finished=now if status in ("finished", "failed") else None
    )
    return made


def test_fleet_numbers_by_region_model_state_and_plan(client):
    region = make_region("us-east")
    host = make_gpu_host(region=region, numa_nodes=2, gpus_per_node=2)
    plan = make_gpu_plan(1)
    make_allocation(
        instance=make_instance(plan=plan, region=region), host=host, gpus=1, vcpus=8, memory_mib=32768
    )
    free = GpuDevice.objects.filter(host=host, allocations__isnull=True).order_by("pci_address").first()
    gpu_mark_faulty(gpu=free, reason="fell off the bus", actor=None)
    found = samples(client.get("/metrics"))
    gpus = {
        state: found[("gpuadmin_gpus", ("model", "RTX 6000"), ("region", "us-east"), ("state", state))]
        for state in ("allocated", "free", "faulty", "cleaning")
    }
    assert gpus == {"allocated": 1, "free": 2, "faulty": 1, "cleaning": 0}
    assert found[("gpuadmin_plan_sellable", ("plan", plan.pk), ("region", "us-east"))] == 2
    assert found[("gpuadmin_gpus_stranded", ("model", "RTX 6000"), ("region", "us-east"))] == 0
    assert found[("gpuadmin_hosts", ("kind", "gpu"), ("region", "us-east"), ("state", "enabled"))] == 1


def test_jobs_by_action_and_status_durations_and_the_oldest_waiting(client):
    instance = make_instance(plan=make_gpu_plan(1))
    job(instance, "linode_create", "finished", seconds=40)
    job(instance, "linode_boot", "finished", seconds=3)
    job(instance, "linode_boot", "failed", seconds=700)
    job(instance, "linode_reboot", "scheduled", age=timedelta(minutes=7))
    found = samples(client.get("/metrics"))
    boot_ok = (("action", "linode_boot"), ("status", "finished"))
    assert found[("gpuadmin_jobs_total", *boot_ok)] == 1
    assert found[("gpuadmin_jobs_total", ("action", "linode_boot"), ("status", "failed"))] == 1
    assert found[("gpuadmin_job_duration_seconds_bucket", *boot_ok[:1], ("le", "2.0"), *boot_ok[1:])] == 0
    assert found[("gpuadmin_job_duration_seconds_bucket", *boot_ok[:1], ("le", "5.0"), *boot_ok[1:])] == 1
    create = (("action", "linode_create"), ("status", "finished"))
    assert found[("gpuadmin_job_duration_seconds_count", *create)] == 1
    assert found[("gpuadmin_job_duration_seconds_sum", *create)] == pytest.approx(40, abs=1)
    failed = (("action", "linode_boot"), ("le", "600.0"), ("status", "failed"))
    assert found[("gpuadmin_job_duration_seconds_bucket", *failed)] == 0
    waiting = found[
        ("gpuadmin_job_oldest_in_flight_seconds", ("action", "linode_reboot"), ("status", "scheduled"))
    ]
    assert 7 * 60 <= waiting < 8 * 60


def test_libvirt_errors_by_host_and_the_heartbeat_age(client):
    from gpuadmin.services import heartbeat_record

    host = make_gpu_host(hostname="flaky-1")
    make_gpu_host(hostname="fine-1")
    for _ in range(3):
        host_record_libvirt_error(host_id=host.pk, error="qemu+tls://flaky-1/system: connection reset")
    heartbeat_record()
    found = samples(client.get("/metrics"))
    assert found[("gpuadmin_host_libvirt_errors_total", ("host", "flaky-1"))] == 3
    assert ("gpuadmin_host_libvirt_errors_total", ("host", "fine-1")) not in found
    assert found[("gpuadmin_worker_heartbeat_age_seconds",)] < 5
    assert found[("gpuadmin_queue_tasks",)] == 0
    assert Host.objects.get(pk=host.pk).last_libvirt_error.endswith("connection reset")


def request_counts(client) -> dict[tuple[str, str], float]:
    """GET requests counted so far, by (view, status)."""
    counts: dict[tuple[str, str], float] = {}
    for key, value in samples(client.get("/metrics")).items():
        labels = dict(key[1:])
        if key[0] == "gpuadmin_http_request_duration_seconds_count" and labels["method"] == "GET":
            counts[(labels["view"], labels["status"])] = value
    return counts


def test_request_latency_is_recorded_by_view_not_by_path(client):
    make_region("us-east")
    before = request_counts(client)  # the histogram lives as long as the process: count the difference
    client.get("/v4/regions")
    client.get("/v4/regions/us-east")
    client.get("/v4/regions/nowhere")
    after = request_counts(client)

    def added(view: str, status: str) -> float:
        return after.get((view, status), 0) - before.get((view, status), 0)

    assert (added("v4:regions", "200"), added("v4:region", "200"), added("v4:region", "404")) == (1, 1, 1)
    assert not any("us-east" in view or "nowhere" in view for view, _ in after)


def test_no_account_names_emails_or_tokens_appear(client):
    account = account_create(name="Zebra Secret Labs", email="billing@zebra-labs.example")
    user = make_user(account=account, username="zebra-owner")
    secret = api_token_create(user=user, scopes="*").secret
    host = make_gpu_host()
    plan = make_gpu_plan(1)
    instance = make_instance(plan=plan, account=account, label="zebra-private-box")
    make_allocation(instance=instance, host=host, gpus=1, vcpus=8, memory_mib=32768)
    job(instance, "linode_create", "finished", seconds=10)
    body = client.get("/metrics").content.decode()
    for leak in ("Zebra", "zebra", "example", "@", secret, secret[:8]):
        assert leak not in body, leak
    assert "gpuadmin_gpus" in body


def test_loopback_reads_an_outside_address_is_refused_the_token_or_staff_let_it_in(client):
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert client.get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    assert client.get("/metrics", **outside).status_code == 403
    spoofed = client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1", **outside)
    assert spoofed.status_code == 403
    with override_settings(GPUADMIN_METRICS_TOKEN=TOKEN):
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **outside).status_code == 200
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong", **outside).status_code == 403
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}", **outside).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ", **outside).status_code == 403  # no token set
    client.force_login(make_user(staff=True))
    assert client.get("/metrics", **outside).status_code == 200


def test_configured_networks_and_ipv4_mapped_addresses():
    import ipaddress

    from django.test import Client

    with override_settings(METRICS_NETWORKS=[ipaddress.ip_network("203.0.113.0/24")]):
        assert Client(REMOTE_ADDR="203.0.113.9").get("/metrics").status_code == 200
        assert Client(REMOTE_ADDR="::ffff:203.0.113.9").get("/metrics").status_code == 200
        assert Client(REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 403
        assert Client(REMOTE_ADDR="not-an-address").get("/metrics").status_code == 403


def free_addresses_for_test():
    gauge = GaugeMetricFamily("gpuadmin_pool_free_addresses", "Free addresses per pool.", labels=["pool"])
    gauge.add_metric(["us-east-v4"], 250)
    return [gauge]


def test_a_provider_adds_families_at_scrape_time(client):
    with override_settings(GPUADMIN_METRICS_PROVIDERS=[f"{__name__}.free_addresses_for_test"]):
        found = samples(client.get("/metrics"))
    assert found[("gpuadmin_pool_free_addresses", ("pool", "us-east-v4"))] == 250


def scrape_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/metrics").status_code == 200
    return len(queries)


def test_a_scrape_costs_the_same_queries_at_10_and_at_1000_hosts(client):
    region = make_region("us-east")
    make_gpu_plan(1), make_gpu_plan(4)
    fleet_seed(region=region, count=10)
    small = scrape_queries(client)
    fleet_seed(region=make_region("us-west", "Fremont, CA"), count=990)
    assert Host.objects.count() == 1000
    large = scrape_queries(client)
    assert large == small <= 12, (small, large)
    found = samples(client.get("/metrics"))
    assert found[("gpuadmin_hosts", ("kind", "gpu"), ("region", "us-west"), ("state", "enabled"))] == 990
