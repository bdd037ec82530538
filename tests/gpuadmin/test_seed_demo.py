import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.flags import GPU_INSTANCES
from accounts.models import Account
from gpuadmin.models import Flag
from inventory.models import GpuDevice, Host, InstanceType, Region

pytestmark = pytest.mark.django_db


def row_counts() -> dict[str, int]:
    return {
        m._meta.label: m.objects.count()
        for m in apps.get_models()
        if m._meta.app_label in {"accounts", "inventory", "provisioning", "gpuadmin", "auth"}
    }


def test_seed_demo_twice_changes_nothing():
    call_command("seed_demo", "--quiet-logins")
    first = row_counts()
    call_command("seed_demo", "--quiet-logins")
    assert row_counts() == first


def test_seed_demo_builds_the_linode_gpu_world():
    call_command("seed_demo", "--quiet-logins")
    gpu_regions = set(Host.objects.filter(kind="gpu").values_list("region_id", flat=True))
    assert gpu_regions == {"us-east", "ap-west", "ap-south"}
    assert Region.objects.exclude(id__in=gpu_regions).exists()
    for region in gpu_regions:
        assert Host.objects.filter(region_id=region, kind="gpu").count() == 4
        assert GpuDevice.objects.filter(host__region_id=region).count() == 16
    plan = InstanceType.objects.get(id="g1-gpu-rtx6000-3")
    assert (plan.gpus, plan.vcpus, plan.memory_mib, plan.disk_mib) == (3, 20, 96 * 1024, 1920 * 1024)
    assert str(plan.price_hourly) == "4.5000" and str(plan.price_monthly) == "3000.00"


def test_seed_demo_people_and_flags():
    call_command("seed_demo", "--quiet-logins")
    User = get_user_model()
    assert User.objects.get(username="admin").is_superuser
    alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
    assert alice.membership.account.kind == Account.Kind.EMPLOYEE
    assert bob.membership.account.kind == Account.Kind.CUSTOMER
    flag = Flag.objects.get(name=GPU_INSTANCES)
    assert flag.is_active_for_user(alice) is True
    assert not flag.is_active_for_user(bob)
