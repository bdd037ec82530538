"""The database itself refuses what the inventory must never hold, whatever the code above it does."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F

from inventory.models import GpuDevice, GpuModel, Host, HostCpu, Image, InstanceType, NumaNode, Region
from tests.builders import make_gpu_host, make_gpu_model, make_gpu_plan, make_region

pytestmark = pytest.mark.django_db


def assert_refused(action):
    with pytest.raises(IntegrityError), transaction.atomic():
        action()


def test_same_pci_address_twice_on_one_host_is_refused():
    host = make_gpu_host()
    gpu = host.gpus.first()
    assert_refused(
        lambda: GpuDevice.objects.create(
            host=host, pci_address=gpu.pci_address, iommu_group=999, model=gpu.model, numa_node=gpu.numa_node
        )
    )


def test_same_pci_address_on_two_hosts_is_fine():
    first, second = make_gpu_host(), make_gpu_host()
    assert set(first.gpus.values_list("pci_address", flat=True)) == set(
        second.gpus.values_list("pci_address", flat=True)
    )


def test_same_cpu_twice_on_one_host_is_refused():
    host = make_gpu_host()
    cpu = host.cpus.first()
    assert_refused(
        lambda: HostCpu.objects.create(
            host=host,
            numa_node=cpu.numa_node,
            cpu_id=cpu.cpu_id,
            core_id=0,
            socket_id=0,
            siblings=[cpu.cpu_id],
        )
    )


def test_numa_used_memory_beyond_usable_is_refused():
    node = make_gpu_host().numa_nodes.first()
    usable = node.memory_mib - node.reserved_memory_mib
    NumaNode.objects.filter(pk=node.pk).update(used_memory_mib=usable)  # exactly full is allowed
    assert_refused(
        lambda: NumaNode.objects.filter(pk=node.pk).update(used_memory_mib=F("used_memory_mib") + 1)
    )
    node.refresh_from_db()
    assert node.used_memory_mib == usable


def test_numa_reserved_beyond_memory_is_refused():
    node = make_gpu_host().numa_nodes.first()
    assert_refused(
        lambda: NumaNode.objects.filter(pk=node.pk).update(reserved_memory_mib=node.memory_mib + 1)
    )


def test_hugepages_used_beyond_total_is_refused():
    node = make_gpu_host().numa_nodes.first()
    assert_refused(
        lambda: NumaNode.objects.filter(pk=node.pk).update(hugepages_1g_used=node.hugepages_1g_total + 1)
    )


def test_two_numa_nodes_with_one_index_are_refused():
    node = make_gpu_host().numa_nodes.first()
    assert_refused(lambda: NumaNode.objects.create(host=node.host, index=node.index, memory_mib=1024))


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (GpuDevice, "state", "borrowed"),
        (Host, "state", "asleep"),
        (Host, "kind", "tpu"),
        (Region, "status", "sunny"),
    ],
)
def test_states_outside_the_choices_are_refused(model, field, value):
    host = make_gpu_host()
    row = {GpuDevice: host.gpus.first(), Host: host, Region: host.region}[model]
    assert_refused(lambda: model.objects.filter(pk=row.pk).update(**{field: value}))


def test_gpu_plan_without_gpus_is_refused():
    plan = make_gpu_plan(1)
    assert_refused(lambda: InstanceType.objects.filter(pk=plan.pk).update(gpus=0))


def test_standard_plan_with_gpus_is_refused():
    model = make_gpu_model()
    assert_refused(
        lambda: InstanceType.objects.create(
            id="g6-standard-odd",
            label="odd",
            type_class="standard",
            gpus=1,
            gpu_model=model,
            vcpus=2,
            memory_mib=4096,
            disk_mib=1,
            transfer_gb=1,
            network_out_mbps=1,
            price_hourly=1,
            price_monthly=1,
        )
    )


def test_negative_price_is_refused():
    plan = make_gpu_plan(1)
    assert_refused(lambda: InstanceType.objects.filter(pk=plan.pk).update(price_hourly=-1))


def test_gpu_model_pci_id_is_unique_and_16_bit():
    model = make_gpu_model()
    assert_refused(
        lambda: GpuModel.objects.create(
            name="dup", short_name="dup", vendor_id=model.vendor_id, product_id=model.product_id, vram_mib=1
        )
    )
    assert_refused(
        lambda: GpuModel.objects.create(
            name="big", short_name="big", vendor_id=0x10000, product_id=1, vram_mib=1
        )
    )


def test_image_with_unknown_os_type_is_refused():
    assert_refused(lambda: Image.objects.create(id="linode/beos", label="BeOS", os_type="beos", size_mib=10))


def test_full_clean_explains_a_bad_pci_address():
    host = make_gpu_host()
    gpu = GpuDevice(host=host, pci_address="3b:00.0", iommu_group=1, model=make_gpu_model())
    with pytest.raises(ValidationError) as excinfo:
        gpu.full_clean()
    assert "0000:3b:00.0" in str(excinfo.value.message_dict["pci_address"])


def test_full_clean_refuses_a_bad_region_slug():
    with pytest.raises(ValidationError):
        Region(id="US East", label="x", country="us").full_clean()
    make_region("us-east")
