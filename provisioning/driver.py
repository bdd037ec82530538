"""One host's hypervisor, seen from provisioning: database rows in, converging libvirt calls out.

No call here runs inside a database transaction: libvirt can take seconds, and a lock held that long
would stall every claim on the host.
"""

from dataclasses import dataclass

from hypervisor import lifecycle
from hypervisor.connection import connect
from hypervisor.spec import DiskSpec
from inventory.models import GpuDevice, Host
from provisioning.domain_spec import disk_spec_for, domain_spec_for
from provisioning.models import Allocation, Instance


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
    def __init__(self, host: Host) -> None:
        self.host = host

    @property
    def conn(self):
        return connect(self.host.libvirt_uri)

    def _spec(self, instance: Instance, allocation: Allocation):
        return domain_spec_for(
            instance=instance, allocation=allocation, domain_type=lifecycle.preferred_domain_type(self.conn)
        )

    def _disk(self, instance: Instance) -> DiskSpec:
        return disk_spec_for(instance=instance, plan=instance.instance_type)

    def ensure_volume(self, instance: Instance) -> str:
        return lifecycle.ensure_volume(self.conn, self._disk(instance))

    def ensure_defined(self, instance: Instance, allocation: Allocation) -> str:
        return lifecycle.ensure_defined(self.conn, self._spec(instance, allocation))

    def ensure_running(self, instance: Instance) -> str:
        return lifecycle.ensure_running(self.conn, instance.domain_uuid)

    def ensure_shut_off(self, instance: Instance) -> str:
        return lifecycle.ensure_shut_off(self.conn, instance.domain_uuid)

    def ensure_absent(self, instance: Instance) -> str:
        return lifecycle.ensure_absent(self.conn, instance.domain_uuid, disk=self._disk(instance))

    def managed_domains(self) -> list[DomainSeen]:
        return [DomainSeen(d.uuid, d.instance_id, d.state) for d in lifecycle.list_managed_domains(self.conn)]

    def domain_state(self, instance: Instance) -> str | None:
        return lifecycle.domain_state(self.conn, instance.domain_uuid)

    def reset_gpu(self, gpu: GpuDevice) -> list[str]:
        return [lifecycle.reset_pci_device(self.conn, address) for address in gpu.functions]


def driver_for(host: Host) -> HostDriver:
    return HostDriver(host)
