"""The NoCloud seed through the worker on libvirt's test driver: built, attached as a read-only cdrom on
virtio-scsi, rewritten by a rebuild and a password reset, removed with the instance.

The test driver keeps no volume data (it has no upload stream), so here the seed volume is created with
the image's size and the job says the upload was simulated; what the image holds is read from the ISO
the worker builds (the same function). test_real_guest_libvirtd.py reads it inside a booted guest.
"""

import base64
import email
import xml.etree.ElementTree as ET

import pytest

from hypervisor import faults
from hypervisor.connection import connect
from hypervisor.faults import Step
from hypervisor.seed import build_seed_iso, read_seed_iso
from hypervisor.spec import SeedSpec, mac_for_instance, seed_volume_prefix
from networking.selectors import instance_ipv4
from provisioning.cloudinit import network_config
from provisioning.domain_spec import seed_spec_for
from provisioning.exceptions import InvalidRequest
from provisioning.models import Instance, Job
from provisioning.services import (
    instance_delete,
    instance_password_reset,
    instance_rebuild,
    instance_shutdown,
)
from tests.builders import make_image
from tests.provisioning.helpers import ROOT_PASS, create, domain_of, last_job

pytestmark = pytest.mark.django_db

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDL8b2Q7x2Y0nH5jH9rS6q0tZ2s5a6d7e8f9g0h1i2j3 alice@laptop"
CUSTOMER = "#cloud-config\npackages: [nvtop]\nusers:\n  - name: alice\n"


def seeds_on_host(instance: Instance, host=None) -> list[str]:
    host = host or instance.host
    pool = connect(host.libvirt_uri).storagePoolLookupByName(host.storage_pool)
    return sorted(name for name in pool.listVolumes() if name.startswith(seed_volume_prefix(instance.pk)))


def cdrom_of(instance: Instance) -> ET.Element | None:
    root = ET.fromstring(domain_of(instance).XMLDesc(0))
    return root.find("./devices/disk[@device='cdrom']")


def seed_files(instance: Instance) -> dict[str, str]:
    instance.refresh_from_db()
    return read_seed_iso(build_seed_iso(seed_spec_for(instance=instance, pool=instance.host.storage_pool)))


def test_a_created_instance_has_its_seed_attached_read_only_on_virtio_scsi(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    instance.refresh_from_db()
    job = last_job(instance)
    assert job.status == Job.Status.FINISHED, job.error
    spec = seed_spec_for(instance=instance, pool=gpu_host.storage_pool)
    assert seeds_on_host(instance) == [spec.volume]
    cdrom = cdrom_of(instance)
    assert cdrom.find("source").attrib == {"pool": gpu_host.storage_pool, "volume": spec.volume}
    assert cdrom.find("target").attrib == {"dev": "sda", "bus": "scsi"}
    assert cdrom.find("readonly") is not None
    root = ET.fromstring(domain_of(instance).XMLDesc(0))
    assert root.find("./devices/controller[@type='scsi']").get("model") == "virtio-scsi"
    # The test driver cannot take the upload: the job says so rather than pretending.
    assert "seed" in job.params["simulated_steps"]


def test_the_seed_carries_hostname_hash_keys_and_network_config_never_the_password(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(
        create, user=employee, plan=plans[1], region=region, image=image, authorized_keys=[KEY], label="gpu-1"
    )
    files = seed_files(instance)
    assert files["label"] == "cidata"
    assert files["meta-data"] == f'instance-id: "gpuadmin-{instance.pk}"\nlocal-hostname: "gpu-1"\n'
    user_data = files["user-data"]
    assert user_data.startswith("#cloud-config\n") and 'hostname: "gpu-1"' in user_data
    assert "$6$" in user_data and ROOT_PASS not in user_data
    assert KEY in user_data
    network = files["network-config"]
    assert network.startswith("version: 2\n")
    assert f'macaddress: "{mac_for_instance(instance.pk)}"' in network
    # The address the instance holds in its region's pool, the pool's prefix and gateway.
    held = instance_ipv4(instance=instance)
    assert held is not None and held.address in instance.ipv4
    assert f'addresses: ["{held.address}/{held.prefix_length}"]' in network
    assert f'via: "{held.gateway}"' in network and "dhcp4" not in network


def test_a_static_network_config_has_the_address_prefix_and_default_route():
    text = network_config(
        mac="52:54:00:00:00:07", address="203.0.113.7", prefix_length=24, gateway="203.0.113.1"
    )
    assert 'addresses: ["203.0.113.7/24"]' in text
    assert '- to: default\n        via: "203.0.113.1"' in text
    assert "dhcp4" not in text


def test_the_seed_image_is_iso9660_named_cidata_with_rock_ridge_names():
    spec = SeedSpec(pool="p", instance_id=7, meta_data="a\n", user_data="b\n", network_config="c\n")
    data = build_seed_iso(spec)
    assert data[0x8001:0x8006] == b"CD001"  # the primary volume descriptor of ISO 9660
    assert read_seed_iso(data) == {
        "label": "cidata",
        "meta-data": "a\n",
        "user-data": "b\n",
        "network-config": "c\n",
    }
    other = SeedSpec(pool="p", instance_id=7, meta_data="a\n", user_data="B\n", network_config="c\n")
    assert other.volume != spec.volume and other.volume.startswith(seed_volume_prefix(7))
    assert not seed_volume_prefix(1) == seed_volume_prefix(12)[: len(seed_volume_prefix(1))]


def test_a_password_reset_writes_a_new_seed_with_the_new_hash_and_the_old_keys(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(
        create, user=employee, plan=plans[1], region=region, image=image, authorized_keys=[KEY]
    )
    run_tasks(instance_shutdown, instance=instance, actor=employee)
    (old,) = seeds_on_host(instance)
    old_user_data = seed_files(instance)["user-data"]

    run_tasks(instance_password_reset, instance=instance, actor=employee, root_pass="Reset-Horse-42")

    assert last_job(instance).status == Job.Status.FINISHED
    (new,) = seeds_on_host(instance)
    assert new != old  # the old seed is gone, the domain points at the new one
    assert cdrom_of(instance).find("source").get("volume") == new
    user_data = seed_files(instance)["user-data"]
    assert KEY in user_data and "Reset-Horse-42" not in user_data
    new_hash = user_data.split("h='")[1].split("'")[0]
    assert new_hash.startswith("$6$") and new_hash not in old_user_data
    # Same instance-id: cloud-init does not rerun per-instance modules; the boot command applies it once.
    assert "chpasswd -e" in user_data and f'"gpuadmin-{instance.pk}"' in seed_files(instance)["meta-data"]


def test_a_rebuild_writes_a_new_seed_and_a_failed_one_before_the_disk_went_keeps_the_old(
    gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    (old,) = seeds_on_host(instance)
    run_tasks(
        instance_rebuild,
        instance=instance,
        actor=employee,
        image=make_image("linode/debian12"),
        authorized_keys=[KEY],
    )
    assert last_job(instance).status == Job.Status.FINISHED
    (new,) = seeds_on_host(instance)
    assert new != old and cdrom_of(instance).find("source").get("volume") == new
    assert KEY in seed_files(instance)["user-data"]

    faults.inject(Step.SHUTDOWN, uri=gpu_host.libvirt_uri, permanent=True, times=None)
    run_tasks(instance_rebuild, instance=instance, actor=employee, image=image, root_pass="Other-Horse-42")
    faults.clear()
    assert last_job(instance).status == Job.Status.FAILED
    assert seeds_on_host(instance) == [new] and KEY in seed_files(instance)["user-data"]


@pytest.mark.parametrize("how", ["delete", "rollback", "delete-wins"])
def test_the_seed_goes_with_the_instance(how, gpu_host, employee, plans, region, image, run_tasks):
    if how == "rollback":
        faults.inject(Step.START, uri=gpu_host.libvirt_uri, permanent=True, times=None)
        instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
        assert last_job(instance).status == Job.Status.FAILED
    elif how == "delete-wins":
        # The create's seed is written, then a delete arrives before the create finished.
        instance = create(user=employee, plan=plans[1], region=region, image=image)
        create_job = last_job(instance)
        from provisioning.driver import driver_for

        driver_for(gpu_host).ensure_seed(instance)
        assert seeds_on_host(instance, gpu_host)
        run_tasks(instance_delete, instance=instance, actor=employee)
        from provisioning.tasks import run_job

        run_tasks(run_job, create_job.pk)
    else:
        instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
        assert seeds_on_host(instance)
        run_tasks(instance_delete, instance=instance, actor=employee)
    instance.refresh_from_db()
    assert instance.status in (Instance.Status.FAILED, Instance.Status.DELETED)
    assert seeds_on_host(instance, gpu_host) == []


def test_customer_user_data_rides_in_the_seed_beside_the_credentials(
    gpu_host, employee, plans, region, image, run_tasks
):
    encoded = base64.b64encode(CUSTOMER.encode()).decode()
    instance = run_tasks(
        create, user=employee, plan=plans[1], region=region, image=image, metadata_user_data=encoded
    )
    instance.refresh_from_db()
    assert instance.user_data == encoded
    archive = email.message_from_string(seed_files(instance)["user-data"])
    assert archive.is_multipart()
    customer, own = archive.get_payload()
    # The customer's part first as sent, the credentials merged into it (their users stay, root is added).
    assert customer.get_payload(decode=True).decode() == CUSTOMER
    own_text = own.get_payload(decode=True).decode()
    assert own.get_content_type() == "text/cloud-config" and "$6$" in own_text
    assert "merge_how" in own_text and "append" in own_text


@pytest.mark.parametrize(
    ("value", "reason"),
    [("not base64!", "base64"), (base64.b64encode(b"x" * (16 * 1024 + 1)).decode(), "at most")],
)
def test_bad_user_data_is_refused_with_its_field_and_changes_nothing(
    value, reason, gpu_host, employee, plans, region, image
):
    before = Instance.objects.count()
    with pytest.raises(InvalidRequest) as refused:
        create(user=employee, plan=plans[1], region=region, image=image, metadata_user_data=value)
    assert refused.value.field == "metadata.user_data" and reason in str(refused.value)
    assert Instance.objects.count() == before


def test_a_windows_image_gets_the_same_seed(gpu_host, employee, plans, region, run_tasks):
    windows = make_image("gpuadmin/windows-server-2022", windows=True)
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=windows)
    assert last_job(instance).status == Job.Status.FINISHED
    assert seeds_on_host(instance) and cdrom_of(instance) is not None
    assert "$6$" in seed_files(instance)["user-data"]
