"""One host's hypervisor, seen from provisioning: database rows in, converging libvirt calls out.

No call here runs inside a database transaction: libvirt can take seconds, and a lock held that long
would stall every claim on the host.

Every hypervisor call goes through `HostDriver.call(function, *args)`: `function` is a hypervisor-layer
function taking the libvirt connection first (`lifecycle.ensure_running`, ...), called here for a real
host and in the demo's hypervisor service for a simulated one (hypervisor.routing), so every process
sees the same guests. A new call needs nothing else: pass it plain data, get plain data back.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from hypervisor import lifecycle, seed, volumes
from hypervisor.errors import HypervisorError
from hypervisor.routing import on_host, on_hosts
from hypervisor.spec import DiskSpec, SeedSpec
from inventory.models import GpuDevice, Host, InstanceType
from inventory.services import host_record_libvirt_error
from networking.selectors import InstanceIpv4, instance_ipv4
from provisioning.domain_spec import disk_spec_for, domain_spec_for, seed_spec_for
from provisioning.models import Allocation, Instance

T = TypeVar("T")


@dataclass(frozen=True)
class DomainSeen:
    uuid: str
    instance_id: int
    state: str

    @property
    def name(self) -> str:
        return f"gpuadmin-{self.instance_id}"

    @property
    def running(self) -> bool:
        return self.state in ("running", "blocked", "paused")


class HostDriver:
    """Every call counts the libvirt errors it meets on the host (Host.libvirt_errors, for /metrics).

    A driver serves one job (`driver_for` in the workflow): it reads an instance's address and builds
    its seed once, so the seed step and the domain that points at the seed agree, in one query."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._seeds: dict[int, tuple[InstanceIpv4 | None, SeedSpec | None]] = {}

    def call(self, function: Callable[..., T], /, *args, **kwargs) -> T:
        """`function(connection to this host, *args, **kwargs)`, wherever the host's state lives."""
        return self._counted(lambda: on_host(self.host.libvirt_uri, function, *args, **kwargs))

    def _counted(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except HypervisorError as exc:
            host_record_libvirt_error(host_id=self.host.pk, error=str(exc))
            raise

    def _spec(self, instance: Instance, allocation: Allocation):
        # Empty: the host's preferred type, resolved in the define call itself (one call, not two).
        domain_type = settings.GPUADMIN_DOMAIN_TYPE
        if allocation.host_id != self.host.pk:  # not this host's pool: nothing known to reuse
            return domain_spec_for(instance=instance, allocation=allocation, domain_type=domain_type)
        address, seed_spec = self._seed_and_address(instance)
        return domain_spec_for(
            instance=instance, allocation=allocation, domain_type=domain_type, seed=seed_spec, address=address
        )

    def _seed_and_address(self, instance: Instance) -> tuple[InstanceIpv4 | None, SeedSpec | None]:
        known = self._seeds.get(instance.pk)
        if known is None:
            address = instance_ipv4(instance=instance)
            spec = seed_spec_for(instance=instance, pool=self.host.storage_pool, address=address)
            known = self._seeds[instance.pk] = (address, spec)
        return known

    @property
    def simulated(self) -> bool:
        """A test-driver host: no volume data, so grows and copies are simulated and say so."""
        return volumes.is_simulated(self.host.libvirt_uri)

    def disk(self, instance: Instance, plan: InstanceType | None = None) -> DiskSpec:
        """The instance's disk in this host's pool, sized for `plan` (default: the instance's)."""
        return disk_spec_for(
            instance=instance, plan=plan or instance.instance_type, pool=self.host.storage_pool
        )

    def ensure_volume(self, instance: Instance) -> str:
        return self.call(lifecycle.ensure_volume, self.disk(instance))

    def ensure_seed(self, instance: Instance) -> str:
        """The instance's NoCloud seed in this host's pool, with what the instance says now. The image is
        built here, in the worker, and only its bytes travel to the host."""
        _, spec = self._seed_and_address(instance)
        if spec is None:
            return lifecycle.Outcome.ALREADY  # deployed from no image: no credentials to deliver
        return self.call(seed.ensure_seed, spec, seed.build_seed_iso(spec))

    def remove_volume(self, instance: Instance) -> str:
        """The instance's disk volume only (the domain stays): a rebuild replaces it."""
        return self.call(volumes.remove_volume, self.disk(instance))

    def grow_volume(self, instance: Instance, plan: InstanceType) -> str:
        return self.call(volumes.grow_volume, self.disk(instance, plan))

    def copy_volume_to(self, target: "HostDriver", instance: Instance) -> volumes.CopyReport:
        """Stream the instance's volume from this host's pool into the target host's, and verify it."""
        return self._counted(
            lambda: on_hosts(
                (self.host.libvirt_uri, target.host.libvirt_uri),
                volumes.copy_volume_between,
                self.disk(instance),
                target.disk(instance),
                chunk_bytes=settings.GPUADMIN_VOLUME_COPY_CHUNK_MIB * volumes.MIB,
            )
        )

    def shares_libvirtd_with(self, other: "HostDriver") -> bool:
        """Two Host rows on one libvirtd (separate pools): one domain namespace, so one domain."""
        return self.host.libvirt_uri == other.host.libvirt_uri

    def remove_moved_source(self, instance: Instance, target: "HostDriver") -> str:
        """After a verified copy to `target` and the domain defined there: remove what is left here."""
        if self.shares_libvirtd_with(target):  # the domain is the target's now
            removed = self.call(volumes.remove_volume, self.disk(instance))
            seeds = self.call(seed.remove_seeds, self.host.storage_pool, instance.pk)
            return seeds if removed == lifecycle.Outcome.ALREADY else removed
        return self.call(
            lifecycle.ensure_absent, instance.domain_uuid, disk=self.disk(instance), seeds_of=instance.pk
        )

    def ensure_defined(self, instance: Instance, allocation: Allocation) -> str:
        return self.call(lifecycle.ensure_defined, self._spec(instance, allocation))

    def ensure_running(self, instance: Instance) -> str:
        return self.call(lifecycle.ensure_running, instance.domain_uuid)

    def ensure_shut_off(self, instance: Instance) -> str:
        return self.call(lifecycle.ensure_shut_off, instance.domain_uuid)

    def ensure_absent(self, instance: Instance) -> str:
        """Domain, disk and seed: nothing of the instance is left on this host."""
        return self.call(
            lifecycle.ensure_absent, instance.domain_uuid, disk=self.disk(instance), seeds_of=instance.pk
        )

    def seed_volumes(self, instance: Instance) -> list[str]:
        return self.call(seed.seed_volumes, self.host.storage_pool, instance.pk)

    def managed_domains(self) -> list[DomainSeen]:
        return [DomainSeen(d.uuid, d.instance_id, d.state) for d in self.call(lifecycle.list_managed_domains)]

    def domain_state(self, instance: Instance) -> str | None:
        return self.call(lifecycle.domain_state, instance.domain_uuid)

    def reset_gpu(self, gpu: GpuDevice) -> list[str]:
        return [self.call(lifecycle.reset_pci_device, address) for address in gpu.functions]


def driver_for(host: Host) -> HostDriver:
    return HostDriver(host)
