from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from hypervisor.profiles import RTX6000_2X2, profile_uri
from inventory.models import GpuDevice, Host
from tests.builders import make_gpu_model, make_region

pytestmark = pytest.mark.django_db


def enroll(*args: str) -> str:
    out = StringIO()
    call_command("enroll_host", *args, stdout=out)
    return out.getvalue()


def test_a_host_is_recorded_as_discovery_reads_it():
    make_region("us-east"), make_gpu_model()
    out = enroll("gpu-a1", "--region", "us-east", "--uri", profile_uri(RTX6000_2X2, "gpu-a1"))
    host = Host.objects.get(hostname="gpu-a1")
    assert out.splitlines()[0] == "gpu-a1: enrolled in us-east (gpu, enabled)"
    assert GpuDevice.objects.filter(host=host, state="available").count() == 4
    assert host.numa_nodes.count() == 2 and host.last_synced_at is not None
    with pytest.raises(CommandError, match="enrolled already"):
        enroll("gpu-a1", "--region", "us-east", "--uri", profile_uri(RTX6000_2X2, "gpu-a1"))


def test_an_unreachable_host_or_unknown_region_writes_nothing():
    make_region("us-east")
    with pytest.raises(CommandError, match="No region 'mars'"):
        enroll("gpu-b1", "--region", "mars", "--uri", "qemu+tcp://127.0.0.1:1/system")
    with pytest.raises(CommandError, match="the host was not added"):
        enroll("gpu-b1", "--region", "us-east", "--uri", "qemu+tcp://127.0.0.1:1/system")
    assert not Host.objects.exists()
