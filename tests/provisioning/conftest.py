import pytest

from accounts.models import Account
from hypervisor.profiles import RTX6000_2X2, profile_uri
from inventory.models import Host
from inventory.sync import host_enroll
from tests.builders import (
    make_account,
    make_gpu_model,
    make_gpu_plan,
    make_image,
    make_region,
    make_user,
    unique,
)


def enroll_rtx_host(region) -> Host:
    """A Linode-like RTX 6000 host (2 NUMA nodes x 2 cards) found by discovery on libvirt's test driver."""
    make_gpu_model()
    hostname = unique(f"{region.id}-gpu")
    host, _ = host_enroll(
        region=region, hostname=hostname, libvirt_uri=profile_uri(RTX6000_2X2, hostname), kind=Host.Kind.GPU
    )
    return host


@pytest.fixture
def region(db):
    return make_region("us-east")


@pytest.fixture
def gpu_host(region):
    return enroll_rtx_host(region)


@pytest.fixture
def employee(db):
    return make_user(account=make_account(kind=Account.Kind.EMPLOYEE))


@pytest.fixture
def image(db):
    return make_image("linode/ubuntu22.04")


@pytest.fixture
def plans(db):
    return {gpus: make_gpu_plan(gpus) for gpus in (1, 2, 3, 4)}


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks):
    """Run what a service enqueued on commit, as the worker would (django-q2 sync mode runs it inline)."""

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run
