"""Every task x every hypervisor step it uses x {transient, permanent}: the run ends done or cleanly
failed, and the database, the allocation rows and libvirt agree afterwards."""

import xml.etree.ElementTree as ET

import pytest

from hypervisor import faults
from hypervisor.connection import connect
from hypervisor.faults import Step
from hypervisor.spec import instance_volume_name, seed_volume_prefix
from inventory.models import GpuDevice, Host
from provisioning.models import Allocation, Instance, Job
from provisioning.services import (
    instance_boot,
    instance_delete,
    instance_password_reset,
    instance_reboot,
    instance_rebuild,
    instance_resize,
    instance_shutdown,
)
from provisioning.tasks import run_job
from tests.builders import make_image
from tests.provisioning.conftest import enroll_rtx_host
from tests.provisioning.helpers import create, domain_of, domain_state, last_job

pytestmark = pytest.mark.django_db

STEPS = {
    "create": [Step.VOLUME, Step.SEED, Step.DEFINE, Step.START],
    "boot": [Step.VOLUME, Step.SEED, Step.DEFINE, Step.START],
    "shutdown": [Step.SHUTDOWN],
    "reboot": [Step.SHUTDOWN, Step.VOLUME, Step.SEED, Step.DEFINE, Step.START],
    "delete": [Step.UNDEFINE],
    "resize": [Step.SHUTDOWN, Step.GROW, Step.VOLUME, Step.SEED, Step.DEFINE, Step.START],
    # A resize its host cannot take: the disk is copied to another host, the seed written there, the
    # source removed after.
    "move": [Step.SHUTDOWN, Step.COPY, Step.GROW, Step.SEED, Step.DEFINE, Step.UNDEFINE, Step.START],
    # A rebuild removes the old disk (undefine step) and makes a new one from the new image, and a new seed.
    "rebuild": [Step.SHUTDOWN, Step.UNDEFINE, Step.VOLUME, Step.SEED, Step.DEFINE, Step.START],
    "password": [Step.SHUTDOWN, Step.VOLUME, Step.SEED, Step.DEFINE],
}
OFFLINE_FIRST = ("boot", "password")
# The source of a move is removed once the copy is verified and the new domain defined: failing to
# remove it does not undo the move (reconcile reports what is left).
FINISHES_ANYWAY = {("move", Step.UNDEFINE)}
CASES = [
    (action, step, kind)
    for action, steps in STEPS.items()
    for step in steps
    for kind in ("transient", "permanent")
]


def act(action, instance, user, plans):
    calls = {
        "boot": lambda: instance_boot(instance=instance, actor=user),
        "shutdown": lambda: instance_shutdown(instance=instance, actor=user),
        "reboot": lambda: instance_reboot(instance=instance, actor=user),
        "delete": lambda: instance_delete(instance=instance, actor=user),
        "resize": lambda: instance_resize(instance=instance, actor=user, plan=plans[2]),
        "move": lambda: instance_resize(instance=instance, actor=user, plan=plans[2]),
        "rebuild": lambda: instance_rebuild(
            instance=instance, actor=user, image=make_image("linode/debian12"), root_pass="Rebuilt-Horse-42"
        ),
        "password": lambda: instance_password_reset(
            instance=instance, actor=user, root_pass="Reset-Horse-42"
        ),
    }
    return calls[action]()


def must_move(instance: Instance, region) -> str:
    """Drain the instance's host and enroll another: its resize has to cross. Returns the new host's URI."""
    Host.objects.filter(pk=instance.host_id).update(state=Host.State.DRAINING)
    return enroll_rtx_host(region).libvirt_uri


def assert_consistent(instance: Instance) -> None:
    instance.refresh_from_db()
    assert not Allocation.objects.filter(instance=instance, released_at=None, move_source=True).exists()
    holds = Allocation.objects.filter(instance=instance, released_at__isnull=True).exists()
    if holds:
        assert Allocation.objects.get(instance=instance, released_at=None).host_id == instance.host_id
    gone = instance.status in (Instance.Status.FAILED, Instance.Status.DELETED)
    assert holds != gone, f"{instance.status} instance {'holds' if holds else 'lacks'} an allocation"
    state = domain_state(instance)
    seeds = seeds_by_host(instance)
    if gone:
        assert state is None, f"orphaned domain ({state}) for a {instance.status} instance"
        assert not seeds, f"seed volumes left for a {instance.status} instance: {seeds}"
    elif instance.status == Instance.Status.RUNNING:
        assert state == "running"
        # Its one seed on its host, the one its domain has (a stale seed there is a leak; what a move left
        # on its old host is for assert_moved_or_home).
        assert len(seeds.get(instance.host_id, [])) == 1
        assert (
            seeds[instance.host_id][0]
            in ET.tostring(
                ET.fromstring(domain_of(instance).XMLDesc(0)).find("./devices/disk[@device='cdrom']/source")
            ).decode()
        )
    elif instance.status == Instance.Status.OFFLINE:
        assert state in ("shut off", None)
    else:
        assert instance.status == Instance.Status.DELETING  # kept with its resources for a retry


def seeds_by_host(instance: Instance) -> dict[int, list[str]]:
    found = {}
    for host in Host.objects.all():
        pool = connect(host.libvirt_uri).storagePoolLookupByName(host.storage_pool)
        names = [n for n in pool.listVolumes() if n.startswith(seed_volume_prefix(instance.pk))]
        if names:
            found[host.pk] = names
    return found


@pytest.mark.parametrize(("action", "step", "kind"), CASES, ids=[f"{a}-{s}-{k}" for a, s, k in CASES])
def test_fault_matrix(action, step, kind, gpu_host, employee, plans, region, image, run_tasks):
    uri = gpu_host.libvirt_uri
    arm = dict(uri=uri, permanent=kind == "permanent", times=None if kind == "permanent" else 1)
    if action == "create":
        faults.inject(step, **arm)
        instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    else:
        instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
        if action in OFFLINE_FIRST:
            run_tasks(instance_shutdown, instance=instance, actor=employee)
        if action == "move":
            uri = must_move(instance, region)
            arm["uri"] = (
                uri
                if step in (Step.COPY, Step.GROW, Step.SEED, Step.DEFINE, Step.START)
                else gpu_host.libvirt_uri
            )
        faults.inject(step, **arm)
        run_tasks(act, action, instance, employee, plans)
    job = last_job(instance)
    if kind == "transient" or (action, step) in FINISHES_ANYWAY:
        assert job.status == Job.Status.FINISHED, job.error
    else:
        assert job.status == Job.Status.FAILED
        assert f"{step} failed" in job.error
    faults.clear()
    assert_consistent(instance)
    if action == "move":
        moved = job.status == Job.Status.FINISHED or step == Step.START  # a failed start is on the new host
        source_left = step == Step.UNDEFINE and kind == "permanent"
        assert_moved_or_home(instance, moved=moved, old=gpu_host, source_left=source_left)


def assert_moved_or_home(instance: Instance, *, moved: bool, old: Host, source_left: bool) -> None:
    """After a move the disk lives on one host: the instance's, in its pool; a failed copy left it home."""
    instance.refresh_from_db()
    assert (instance.host_id != old.pk) == moved
    pool = connect(instance.host.libvirt_uri).storagePoolLookupByName(instance.host.storage_pool)
    assert instance_volume_name(instance.pk) in pool.listVolumes()
    for host in Host.objects.exclude(pk=instance.host_id):
        volumes = connect(host.libvirt_uri).storagePoolLookupByName(host.storage_pool).listVolumes()
        left = source_left and host == old
        assert (instance_volume_name(instance.pk) in volumes) == left, f"{host} holds a stray copy"
        seeds = [v for v in volumes if v.startswith(seed_volume_prefix(instance.pk))]
        assert bool(seeds) == left, f"{host} holds a stray seed {seeds}"


@pytest.mark.parametrize("action", list(STEPS))
def test_every_task_run_twice_ends_in_the_same_place(
    action, gpu_host, employee, plans, region, image, run_tasks
):
    instance = run_tasks(create, user=employee, plan=plans[1], region=region, image=image)
    if action in OFFLINE_FIRST:
        run_tasks(instance_shutdown, instance=instance, actor=employee)
    if action == "move":
        must_move(instance, region)
    if action != "create":
        run_tasks(act, action, instance, employee, plans)
    job = last_job(instance)
    assert job.status == Job.Status.FINISHED, job.error
    instance.refresh_from_db()
    before = (instance.status, instance.instance_type_id, domain_state(instance))
    allocations = list(Allocation.objects.filter(instance=instance).values_list("pk", "released_at"))
    Job.objects.filter(pk=job.pk).update(status=Job.Status.STARTED)  # a duplicate delivery of the task
    run_tasks(run_job, job.pk)
    instance.refresh_from_db()
    assert (instance.status, instance.instance_type_id, domain_state(instance)) == before
    assert list(Allocation.objects.filter(instance=instance).values_list("pk", "released_at")) == allocations
    assert_consistent(instance)


def _delete(instance, user, plans, run_tasks):
    run_tasks(instance_delete, instance=instance, actor=user)


def _resize_down(instance, user, plans, run_tasks):
    run_tasks(instance_resize, instance=instance, actor=user, plan=plans[1])


RELEASES = {"delete": _delete, "resize-down": _resize_down}
RESET_CASES = [
    (release, kind) for release in (*RELEASES, "failed-create") for kind in ("transient", "permanent")
]


@pytest.mark.parametrize(("release", "kind"), RESET_CASES, ids=[f"{r}-reset-{k}" for r, k in RESET_CASES])
def test_fault_matrix_reset_step(release, kind, gpu_host, employee, plans, region, image, run_tasks):
    """The reset after a tenant is a step too: a transient fault is retried, a permanent one quarantines the
    card with the reason. Either way the instance is consistent and no card is back on sale unreset."""
    uri = gpu_host.libvirt_uri
    reset = dict(uri=uri, permanent=kind == "permanent", times=None if kind == "permanent" else 1)
    if release == "failed-create":
        faults.inject(Step.DEFINE, uri=uri, permanent=True, times=None)
        faults.inject(Step.RESET, **reset)
        instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
        released = set(Allocation.objects.get(instance=instance).gpus.values_list("gpu_id", flat=True))
    else:
        instance = run_tasks(create, user=employee, plan=plans[2], region=region, image=image)
        held = set(Allocation.objects.get(instance=instance).gpus.values_list("gpu_id", flat=True))
        faults.inject(Step.RESET, **reset)
        RELEASES[release](instance, employee, plans, run_tasks)
        kept = set(
            Allocation.objects.filter(instance=instance, released_at__isnull=True).values_list(
                "gpus__gpu_id", flat=True
            )
        )
        released = held - kept
    assert len(released) in (1, 2)
    states = {gpu.state: gpu.state_reason for gpu in GpuDevice.objects.filter(pk__in=released)}
    if kind == "transient":
        assert set(states) == {GpuDevice.State.AVAILABLE}
    else:
        assert set(states) == {GpuDevice.State.QUARANTINED}
        assert all(reason.startswith("reset failed") for reason in states.values())
    faults.clear()
    assert_consistent(instance)
