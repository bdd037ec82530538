from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from hypervisor.spec import STORAGE_POOL

PCI_ADDRESS_RE = r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$"
pci_address_validator = RegexValidator(
    PCI_ADDRESS_RE, "A PCI address looks like 0000:3b:00.0 (lower-case hex)."
)
slug_validator = RegexValidator(r"^[a-z0-9]+(-[a-z0-9]+)*$", "Lower-case letters, digits and single dashes.")


def _choices_check(field: str, choices: type[models.TextChoices], name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=name)


class RegionStatus(models.TextChoices):
    OK = "ok", "OK"
    OUTAGE = "outage", "Outage"


class Region(models.Model):
    Status = RegionStatus

    id = models.CharField(primary_key=True, max_length=32, validators=[slug_validator])
    label = models.CharField(max_length=64)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, lower case (us, in, sg).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OK)

    class Meta:
        ordering = ["id"]
        constraints = [_choices_check("status", RegionStatus, "region_status_valid")]

    def __str__(self) -> str:
        return self.id


class GpuModel(models.Model):
    name = models.CharField(max_length=128, unique=True)
    short_name = models.CharField(max_length=32, help_text='What people call it: "RTX 6000".')
    vendor_id = models.PositiveIntegerField(validators=[MaxValueValidator(0xFFFF)])
    product_id = models.PositiveIntegerField(validators=[MaxValueValidator(0xFFFF)])
    vram_mib = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    bar_mib = models.PositiveIntegerField(
        default=256,
        validators=[MinValueValidator(1)],
        help_text="Size of the card's large 64-bit BAR (the VRAM aperture, BAR1) in MiB, as lspci -vv "
        "shows it: the guest's 64-bit PCI hole is sized to map it for every card (A100/H100 80GB: 131072).",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["vendor_id", "product_id"], name="gpumodel_unique_pci_id"),
            models.CheckConstraint(
                condition=Q(vendor_id__lte=0xFFFF, product_id__lte=0xFFFF), name="gpumodel_pci_id_16bit"
            ),
            models.CheckConstraint(condition=Q(vram_mib__gt=0), name="gpumodel_vram_positive"),
            models.CheckConstraint(condition=Q(bar_mib__gt=0), name="gpumodel_bar_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class HostKind(models.TextChoices):
    GPU = "gpu", "GPU"
    STANDARD = "standard", "Standard"


class HostState(models.TextChoices):
    ENABLED = "enabled", "Enabled"
    DRAINING = "draining", "Draining"
    MAINTENANCE = "maintenance", "Maintenance"
    DISABLED = "disabled", "Disabled"


class Host(models.Model):
    Kind = HostKind

    State = HostState

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="hosts")
    hostname = models.CharField(max_length=253, unique=True)
    libvirt_uri = models.CharField(max_length=512)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.GPU)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ENABLED)
    state_reason = models.CharField(max_length=255, blank=True)
    profile = models.CharField(
        max_length=64,
        blank=True,
        help_text="Hardware profile the host was built from (synthetic and test hosts).",
    )
    simulated = models.BooleanField(
        default=False,
        help_text="A libvirt test-driver host: no hardware, so a GPU reset there is simulated (and recorded "
        "as such). Set at enrollment from the URI; only a test-driver URI can be simulated.",
    )
    storage_pool = models.CharField(
        max_length=64,
        default=STORAGE_POOL,
        validators=[RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", "A libvirt storage pool name.")],
        help_text="The libvirt storage pool holding this host's image and guest volumes. Two hosts on one "
        "libvirtd (one URI) need two pools.",
    )
    bridge = models.CharField(
        max_length=15,
        default="br0",
        validators=[
            RegexValidator(r"^[A-Za-z0-9_.-]{1,15}$", "A Linux interface name (15 characters at most).")
        ],
        help_text="The host's bridge its guests' NICs join (on the network that routes the region's IPv4 "
        "pools). Each NIC is filtered by libvirt's clean-traffic to its own address.",
    )
    generation = models.PositiveBigIntegerField(
        default=0,
        help_text="Bumped by every change a claim reads: claims, releases, card states, counters, topology.",
    )
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # Errors libvirt gave jobs, reconcile, card cleaning and syncs on this host (a counter for /metrics).
    libvirt_errors = models.PositiveBigIntegerField(default=0, editable=False)
    last_libvirt_error = models.CharField(max_length=500, blank=True, editable=False)
    last_libvirt_error_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["region_id", "hostname"]
        constraints = [
            _choices_check("kind", HostKind, "host_kind_valid"),
            _choices_check("state", HostState, "host_state_valid"),
            # A real host is never simulated: its cards are resold only after a real reset.
            models.CheckConstraint(
                condition=Q(simulated=False)
                | Q(libvirt_uri__startswith="test:")
                | Q(libvirt_uri__startswith="test+"),
                name="host_simulated_only_on_test_driver",
            ),
            # Two hosts sharing a libvirtd and a pool would be one disk store counted twice: a move
            # between them would copy a volume onto itself, and cleaning one up would delete the other's.
            # Simulated hosts (libvirt's test driver) hold no data; fleets share test:///default.
            models.UniqueConstraint(
                fields=["libvirt_uri", "storage_pool"],
                condition=~(Q(libvirt_uri__startswith="test:") | Q(libvirt_uri__startswith="test+")),
                name="host_unique_pool_per_libvirtd",
            ),
        ]
        indexes = [models.Index(fields=["region", "kind", "state"])]

    def __str__(self) -> str:
        return self.hostname


class NumaNode(models.Model):
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="numa_nodes")
    index = models.PositiveSmallIntegerField()
    memory_mib = models.PositiveBigIntegerField()
    reserved_memory_mib = models.PositiveBigIntegerField(default=0)
    used_memory_mib = models.PositiveBigIntegerField(default=0)
    hugepages_1g_total = models.PositiveIntegerField(default=0)
    hugepages_1g_used = models.PositiveIntegerField(default=0)
    # Capacity counters: denormalized so a claim finds candidate nodes through an index instead of
    # scanning every GPU and CPU row of a region. Claims and releases keep them exact under the host
    # lock; inventory.counters.numa_counters_recount rebuilds them from the rows.
    gpu_model = models.ForeignKey(
        GpuModel,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The model this node sells; empty when it has no cards or mixes models (it sells none).",
    )
    free_gpus = models.PositiveSmallIntegerField(
        default=0, help_text="Counter: placeable cards in state available and in no active allocation."
    )
    allocated_gpus = models.PositiveSmallIntegerField(
        default=0, help_text="Counter: cards of this node in an active allocation."
    )
    free_cores = models.PositiveSmallIntegerField(
        default=0, help_text="Counter: cores with every thread unreserved and in no active allocation."
    )
    threads_per_core = models.PositiveSmallIntegerField(
        default=1, help_text="Hardware threads of one core (2 with SMT); a vCPU share takes whole cores."
    )

    class Meta:
        ordering = ["host_id", "index"]
        indexes = [
            # The claim's candidate query: nodes selling one model, tightest first.
            models.Index(
                fields=["gpu_model", "free_gpus", "free_cores", "host"], name="numanode_gpu_candidates"
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["host", "index"], name="numanode_unique_index_per_host"),
            models.CheckConstraint(
                condition=Q(free_gpus__gte=0, allocated_gpus__gte=0, free_cores__gte=0),
                name="numanode_counters_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(threads_per_core__gte=1), name="numanode_threads_per_core_positive"
            ),
            models.CheckConstraint(
                condition=Q(used_memory_mib__lte=F("memory_mib") - F("reserved_memory_mib")),
                name="numanode_used_memory_within_capacity",
            ),
            models.CheckConstraint(
                condition=Q(reserved_memory_mib__lte=F("memory_mib")), name="numanode_reserved_within_memory"
            ),
            models.CheckConstraint(
                condition=Q(hugepages_1g_used__lte=F("hugepages_1g_total")),
                name="numanode_hugepages_within_total",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.host.hostname} node {self.index}"

    @property
    def free_memory_mib(self) -> int:
        return self.memory_mib - self.reserved_memory_mib - self.used_memory_mib


class HostCpu(models.Model):
    """One logical CPU (hardware thread). Reserved CPUs run the host and emulator threads, never a vCPU."""

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="cpus")
    numa_node = models.ForeignKey(NumaNode, on_delete=models.CASCADE, related_name="cpus")
    cpu_id = models.PositiveIntegerField()
    core_id = models.PositiveIntegerField()
    socket_id = models.PositiveIntegerField()
    siblings = models.JSONField(default=list, help_text="cpu_ids sharing this core, this one included.")
    reserved = models.BooleanField(default=False)

    class Meta:
        ordering = ["host_id", "cpu_id"]
        verbose_name = "host CPU"
        constraints = [
            models.UniqueConstraint(fields=["host", "cpu_id"], name="hostcpu_unique_cpu_per_host"),
        ]

    def __str__(self) -> str:
        return f"{self.host.hostname} cpu {self.cpu_id}"


class GpuDeviceState(models.TextChoices):
    AVAILABLE = "available", "Available"
    RESERVED = "reserved", "Reserved"
    CLEANING = "cleaning", "Cleaning"
    FAULTY = "faulty", "Faulty"
    QUARANTINED = "quarantined", "Quarantined"
    REMOVED = "removed", "Removed"


class GpuDevice(models.Model):
    State = GpuDeviceState

    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="gpus")
    numa_node = models.ForeignKey(
        NumaNode,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="gpus",
        help_text="Empty when the firmware reports no NUMA affinity for the card.",
    )
    pci_address = models.CharField(max_length=16, validators=[pci_address_validator])
    iommu_group = models.PositiveIntegerField()
    model = models.ForeignKey(GpuModel, on_delete=models.PROTECT, related_name="devices")
    companion_functions = models.JSONField(
        default=list,
        blank=True,
        help_text="PCI addresses of the other functions in the card's IOMMU group (audio, USB, UCSI).",
    )
    foreign_functions = models.JSONField(
        default=list,
        blank=True,
        help_text="PCI addresses in the card's IOMMU group that belong to another device: such a card "
        "cannot be given to a guest alone, so it is never placed.",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.AVAILABLE)
    state_reason = models.CharField(max_length=255, blank=True)
    missing_since = models.DateTimeField(
        null=True, blank=True, help_text="Set when a sync no longer finds the card on the host."
    )
    reset_lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="While a worker resets the card: until when it holds the reset (another worker waits).",
    )

    class Meta:
        ordering = ["host_id", "pci_address"]
        verbose_name = "GPU"
        constraints = [
            models.UniqueConstraint(fields=["host", "pci_address"], name="gpudevice_unique_pci_per_host"),
            _choices_check("state", GpuDeviceState, "gpudevice_state_valid"),
        ]
        indexes = [models.Index(fields=["model", "state"])]

    def __str__(self) -> str:
        return f"{self.host.hostname} {self.pci_address}"

    @property
    def functions(self) -> list[str]:
        """Every PCI function that goes to the guest with this card, the card itself first."""
        return passthrough_functions(self.pci_address, self.companion_functions)


def passthrough_functions(pci_address: str, companion_functions: list[str]) -> list[str]:
    """GpuDevice.functions from its two columns, for reads that carry the values rather than the row."""
    return [pci_address, *companion_functions]


class InstanceTypeClass(models.TextChoices):
    GPU = "gpu", "GPU"
    STANDARD = "standard", "Standard"
    DEDICATED = "dedicated", "Dedicated"
    NANODE = "nanode", "Nanode"


class InstanceType(models.Model):
    TypeClass = InstanceTypeClass

    id = models.CharField(primary_key=True, max_length=64, validators=[slug_validator])
    label = models.CharField(max_length=128)
    type_class = models.CharField(max_length=16, choices=TypeClass.choices)
    gpus = models.PositiveSmallIntegerField(default=0)
    gpu_model = models.ForeignKey(
        GpuModel, null=True, blank=True, on_delete=models.PROTECT, related_name="plans"
    )
    vcpus = models.PositiveSmallIntegerField()
    memory_mib = models.PositiveIntegerField()
    disk_mib = models.PositiveIntegerField()
    transfer_gb = models.PositiveIntegerField()
    network_out_mbps = models.PositiveIntegerField()
    price_hourly = models.DecimalField(max_digits=10, decimal_places=4)
    price_monthly = models.DecimalField(max_digits=10, decimal_places=2)
    backups_price_hourly = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    backups_price_monthly = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    successor = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    deprecated = models.BooleanField(default=False)

    class Meta:
        ordering = ["type_class", "gpus", "vcpus", "id"]
        constraints = [
            _choices_check("type_class", InstanceTypeClass, "instancetype_class_valid"),
            models.CheckConstraint(
                condition=(
                    Q(type_class="gpu", gpus__gte=1, gpus__lte=8, gpu_model__isnull=False)
                    | (~Q(type_class="gpu") & Q(gpus=0, gpu_model__isnull=True))
                ),
                name="instancetype_gpus_match_class",
            ),
            models.CheckConstraint(
                condition=Q(vcpus__gte=1, memory_mib__gte=1), name="instancetype_shape_positive"
            ),
            models.CheckConstraint(
                condition=Q(
                    price_hourly__gte=0,
                    price_monthly__gte=0,
                    backups_price_hourly__gte=0,
                    backups_price_monthly__gte=0,
                ),
                name="instancetype_prices_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def is_gpu(self) -> bool:
        return self.type_class == self.TypeClass.GPU


class ImageOsType(models.TextChoices):
    LINUX = "linux", "Linux"
    WINDOWS = "windows", "Windows"


class Image(models.Model):
    OsType = ImageOsType

    id = models.CharField(
        primary_key=True,
        max_length=64,
        validators=[RegexValidator(r"^[a-z0-9-]+/[a-z0-9.\-]+$", "Images look like linode/ubuntu22.04.")],
    )
    label = models.CharField(max_length=128)
    vendor = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=255, blank=True)
    os_type = models.CharField(max_length=16, choices=OsType.choices, default=OsType.LINUX)
    needs_uefi = models.BooleanField(default=False)
    kernel = models.CharField(
        max_length=255,
        blank=True,
        help_text="A kernel on every host (absolute path) that boots the guest directly, as Linode's own "
        "kernels do; blank: the firmware boots the disk's own boot loader.",
    )
    initrd = models.CharField(max_length=255, blank=True, help_text="The kernel's initramfs on the hosts.")
    kernel_cmdline = models.CharField(max_length=512, blank=True)
    size_mib = models.PositiveIntegerField()
    public = models.BooleanField(default=True)
    deprecated = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            _choices_check("os_type", ImageOsType, "image_os_type_valid"),
            models.CheckConstraint(condition=Q(size_mib__gt=0), name="image_size_positive"),
        ]

    def __str__(self) -> str:
        return self.id


class CapacitySample(models.Model):
    """One region and GPU model's capacity at one 15-minute slot: region_capacity's numbers, kept so the
    dashboard can draw them over time. Written by inventory.services.capacity_sample_record; older slots
    are thinned by capacity_samples_thin, so the table stays bounded."""

    recorded_at = models.DateTimeField(help_text="The start of the 15-minute slot (UTC).")
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="capacity_samples")
    gpu_model = models.ForeignKey(GpuModel, on_delete=models.CASCADE, related_name="capacity_samples")
    hosts = models.PositiveIntegerField(default=0)
    hosts_enabled = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    allocated = models.PositiveIntegerField(default=0)
    free = models.PositiveIntegerField(default=0)
    stranded = models.PositiveIntegerField(default=0, help_text="The part of `free` no GPU plan can use.")
    cleaning = models.PositiveIntegerField(default=0)
    quarantined = models.PositiveIntegerField(default=0)
    faulty = models.PositiveIntegerField(default=0)
    reserved = models.PositiveIntegerField(default=0)
    removed = models.PositiveIntegerField(default=0)
    host_out_of_service = models.PositiveIntegerField(default=0)
    unplaceable = models.PositiveIntegerField(default=0)
    sellable = models.JSONField(default=dict, blank=True, help_text='{"g1-gpu-rtx6000-1": 6, ...}')

    class Meta:
        ordering = ["recorded_at", "region_id", "gpu_model_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "gpu_model", "recorded_at"], name="capacitysample_one_per_slot"
            ),
            # The same partition as GpuCounts: every card in exactly one bucket.
            models.CheckConstraint(
                condition=Q(
                    total=F("allocated")
                    + F("free")
                    + F("cleaning")
                    + F("quarantined")
                    + F("faulty")
                    + F("reserved")
                    + F("removed")
                    + F("host_out_of_service")
                    + F("unplaceable")
                ),
                name="capacitysample_buckets_add_up",
            ),
            models.CheckConstraint(
                condition=Q(stranded__lte=F("free")), name="capacitysample_stranded_le_free"
            ),
            models.CheckConstraint(
                condition=Q(hosts_enabled__lte=F("hosts")), name="capacitysample_enabled_le_hosts"
            ),
        ]
        indexes = [models.Index(fields=["recorded_at"], name="capacitysample_recorded_at")]

    def __str__(self) -> str:
        return f"{self.region_id} {self.gpu_model} at {self.recorded_at:%Y-%m-%d %H:%M}"
