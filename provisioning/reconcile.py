"""Compare what libvirt runs with what the database says, host by host; repair what is safe, report the rest.

Safe repairs: restart a domain that should run, set the power state the database shows, rebuild a
vanished domain through a boot job, release the allocation of an instance that is gone, resume jobs
whose task was lost. Never: destroy a domain that no instance of ours owns; that is reported.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.models import Origin
from accounts.services import audit_record
from hypervisor.errors import HypervisorError
from inventory.models import GpuDevice, Host
from networking.services import addresses_release
from provisioning import jobs
from provisioning.driver import driver_for
from provisioning.gpu_hygiene import allocation_release_and_clean, gpus_enqueue_cleaning
from provisioning.models import AllocatedGpu, Allocation, Instance, Job
from provisioning.services import instance_boot, instance_delete

logger = logging.getLogger(__name__)

GONE = (Instance.Status.DELETED, Instance.Status.FAILED)


@dataclass
class HostReport:
    hostname: str
    checked: int = 0
    repaired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def clean(self) -> bool:
        return not (self.repaired or self.problems or self.error)


def reconcile_hosts(*, hostnames: list[str] | None = None) -> list[HostReport]:
    hosts = Host.objects.exclude(state=Host.State.DISABLED).order_by("hostname")
    if hostnames:
        hosts = Host.objects.filter(hostname__in=hostnames).order_by("hostname")
    return [reconcile_host(host=host) for host in hosts]


def reconcile_host(*, host: Host) -> HostReport:
    report = HostReport(hostname=host.hostname)
    try:
        domains = {d.uuid: d for d in driver_for(host).managed_domains()}
    except HypervisorError as exc:
        report.error = f"could not list domains: {exc}"
        return report
    busy = set(
        Job.objects.filter(instance__host=host, status__in=Job.IN_FLIGHT).values_list(
            "instance_id", flat=True
        )
    )
    instances = (
        Instance.objects.filter(host=host).exclude(status__in=GONE).select_related("instance_type", "image")
    )
    for instance in instances:
        report.checked += 1
        domain = domains.pop(str(instance.domain_uuid), None)
        if instance.pk in busy:
            continue
        _reconcile_instance(host, instance, domain, report)
    for domain in domains.values():
        owner = Instance.objects.filter(pk=domain.instance_id).first() if domain.instance_id else None
        whose = f"instance {owner.pk} ({owner.label}, {owner.status})" if owner else "no instance of ours"
        report.problems.append(
            f"domain {domain.name} ({domain.uuid}) belongs to {whose}: "
            "left untouched, remove it by hand if unwanted"
        )
    _release_gone(host, busy, report)
    for line in report.repaired + report.problems:
        logger.warning("reconcile %s: %s", host.hostname, line)
    return report


def _reconcile_instance(host: Host, instance: Instance, domain, report: HostReport) -> None:
    label = f"instance {instance.pk} ({instance.label})"
    if instance.status == Instance.Status.DELETING:
        # The customer's delete is final (the instance already left their account): try it again.
        job = instance_delete(instance=instance, actor=None, origin=Origin.RECONCILE)
        line = f"{label} was deleting with no job in flight: deleting again (job {job.pk})"
        _repaired(report, instance, line)
        return
    if domain is None:
        if not instance.allocations.filter(released_at__isnull=True).exists():
            report.problems.append(f"{label} has no domain and no allocation: needs a person")
            return
        if instance.booted:
            report.problems.append(
                f"{label}: domain vanished from {host.hostname}; rebuilding it with a boot job"
            )
            _rebuild(instance, host)
        else:
            report.problems.append(
                f"{label}: domain vanished from {host.hostname}; the next boot rebuilds it"
            )
        return
    if instance.booted and not domain.running:
        try:
            driver_for(host).ensure_running(instance)
        except HypervisorError as exc:
            report.problems.append(f"{label} should run but could not be started: {exc}")
            return
        _repaired(report, instance, f"{label}: restarted (it should be running)")
        _set_status(instance, Instance.Status.RUNNING)
    elif not instance.booted and domain.running:
        instance.booted = True
        instance.save(update_fields=["booted", "updated"])
        _set_status(instance, Instance.Status.RUNNING)
        _repaired(report, instance, f"{label}: running on the host, database said offline; now running")
    else:
        expected = Instance.Status.RUNNING if instance.booted else Instance.Status.OFFLINE
        if instance.status != expected:
            _repaired(report, instance, f"{label}: status {instance.status} -> {expected}")
            _set_status(instance, expected)


def _rebuild(instance: Instance, host: Host) -> None:
    instance_boot(
        instance=instance,
        actor=None,
        origin=Origin.RECONCILE,
        detail=f"its domain vanished from {host.hostname}: rebuilding it",
    )


def _repaired(report: HostReport, instance: Instance, line: str) -> None:
    """A repair changes what an instance is or does: it is reported, and audited as the system's."""
    report.repaired.append(line)
    audit_record(
        actor=None, origin=Origin.RECONCILE, action="instance.reconcile", target=instance, detail=line
    )


def _set_status(instance: Instance, status: str) -> None:
    Instance.objects.filter(pk=instance.pk).update(status=status, updated=timezone.now())
    instance.status = status


def _release_gone(host: Host, busy: set[int], report: HostReport) -> None:
    stale = Allocation.objects.filter(host=host, released_at__isnull=True, instance__status__in=GONE).exclude(
        instance_id__in=busy
    )
    for allocation in stale.select_related("instance"):
        allocation_release_and_clean(allocation=allocation)
        addresses_release(instance=allocation.instance)
        _repaired(
            report,
            allocation.instance,
            f"released the allocation of instance {allocation.instance_id} ({allocation.instance.status})",
        )


def jobs_resume(*, now=None) -> int:
    """The sweep (every minute, and at each reconcile): queue again every job whose worker died (its lease
    expired) or whose task was lost (scheduled for over a minute), and the reset of every card left
    cleaning by a dead worker. Each queued task that finds a live lease leaves, so running this often is
    safe. Returns how many jobs were queued."""
    now = now or timezone.now()
    lease = timedelta(seconds=settings.GPUADMIN_JOB_LEASE_SECONDS)
    lost = Job.objects.filter(
        Q(status=Job.Status.SCHEDULED, created__lt=now - timedelta(seconds=60))
        | Q(status=Job.Status.STARTED, lease_expires_at__lt=now)
        # Started before leases existed, or by a worker that never renewed: as good as expired.
        | Q(status=Job.Status.STARTED, lease_expires_at__isnull=True, started__lt=now - lease)
    ).order_by("pk")
    count = 0
    for job in lost:
        with transaction.atomic():
            jobs.enqueue(job)
        count += 1
        logger.warning("sweep: job %s (%s, %s) queued again", job.pk, job.action, job.status)
    # A card released moments ago has its reset queued already; one whose reset lease expired lost it.
    recently_released = AllocatedGpu.objects.filter(gpu=OuterRef("pk"), released_at__gte=now - lease)
    cleaning = list(
        GpuDevice.objects.filter(state=GpuDevice.State.CLEANING)
        .filter(Q(reset_lease_expires_at__isnull=True) | Q(reset_lease_expires_at__lt=now))
        .exclude(Exists(recently_released))
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        gpus_enqueue_cleaning(gpu_ids=cleaning)
    return count
