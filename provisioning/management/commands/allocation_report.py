import json

from django.core.management.base import BaseCommand

from provisioning.selectors import active_allocations


def _ranges(numbers: list[int]) -> str:
    """2,3,4,50,51 -> '2-4,50-51': CPU lists as people write them (and as libvirt's cpuset reads)."""
    parts, start, previous = [], None, None
    for n in sorted(numbers):
        if start is None:
            start = previous = n
        elif n == previous + 1:
            previous = n
        else:
            parts.append(f"{start}-{previous}" if start != previous else f"{start}")
            start = previous = n
    if start is not None:
        parts.append(f"{start}-{previous}" if start != previous else f"{start}")
    return ",".join(parts)


class Command(BaseCommand):
    help = (
        "Every active allocation: instance, account, host, GPUs (PCI, NUMA node), CPUs and memory per node."
    )

    def add_arguments(self, parser):
        parser.add_argument("--region", help="Only this region.")
        parser.add_argument("--host", help="Only this hostname.")
        parser.add_argument("--json", action="store_true", help="One JSON document instead of text.")

    def handle(self, *args, **options):
        lines = active_allocations(region=options["region"], host=options["host"])
        if options["json"]:
            self.stdout.write(json.dumps([line.as_dict() for line in lines], indent=2))
            return
        if not lines:
            self.stdout.write("No active allocations.")
            return
        for line in lines:
            self.stdout.write(
                f"{line.host}  instance {line.instance} ({line.instance_label}, {line.account})  "
                f"{line.plan}  since {line.created_at}"
            )
            for gpu in line.gpus:
                extra = len(gpu.functions) - 1
                self.stdout.write(
                    f"    GPU {gpu.pci_address} {gpu.model} node {gpu.numa_node}  +{extra} functions"
                )
            nodes = sorted({cpu.numa_node for cpu in line.cpus})
            for node in nodes:
                cpus = [cpu.cpu_id for cpu in line.cpus if cpu.numa_node == node]
                self.stdout.write(f"    CPUs node {node}: {_ranges(cpus)} ({len(cpus)} vCPUs)")
            for memory in line.memory:
                pages = f", {memory.hugepages_1g} x 1G hugepages" if memory.hugepages_1g else ""
                self.stdout.write(f"    memory node {memory.numa_node}: {memory.memory_mib} MiB{pages}")
        self.stdout.write(f"{len(lines)} active allocation(s).")
