import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from accounts.models import Origin

LABEL_RE = r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{1,62})[A-Za-z0-9]$"
label_validator = RegexValidator(
    LABEL_RE,
    "Label must be 3-64 characters of letters, digits, '-', '_' and '.', "
    "and start and end with a letter or digit.",
)


def _choices_check(field: str, choices: type[models.TextChoices], name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(**{f"{field}__in": choices.values}), name=name)


class InstanceStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    BOOTING = "booting", "Booting"
    RUNNING = "running", "Running"
    SHUTTING_DOWN = "shutting_down", "Shutting down"
    OFFLINE = "offline", "Offline"
    REBOOTING = "rebooting", "Rebooting"
    RESIZING = "resizing", "Resizing"
    REBUILDING = "rebuilding", "Rebuilding"
    DELETING = "deleting", "Deleting"
    DELETED = "deleted", "Deleted"
    FAILED = "failed", "Failed"


class Instance(models.Model):
    """A VM sold to an account (a "Linode"). Soft-deleted: events and invoices keep pointing at it."""

    Status = InstanceStatus

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="instances")
    label = models.CharField(max_length=64, validators=[label_validator])
    group = models.CharField(max_length=64, blank=True)
    region = models.ForeignKey("inventory.Region", on_delete=models.PROTECT, related_name="instances")
    instance_type = models.ForeignKey(
        "inventory.InstanceType", on_delete=models.PROTECT, related_name="instances"
    )
    image = models.ForeignKey(
        "inventory.Image", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROVISIONING)
    status_reason = models.CharField(max_length=500, blank=True)
    host = models.ForeignKey(
        "inventory.Host", null=True, blank=True, on_delete=models.PROTECT, related_name="instances"
    )
    domain_uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    booted = models.BooleanField(default=True, help_text="Whether the instance should be running.")
    tags = models.JSONField(default=list, blank=True)
    ipv4 = models.JSONField(default=list, blank=True)
    ipv6 = models.CharField(max_length=64, blank=True)
    cloud_init_user_data = models.TextField(
        blank=True,
        help_text="NoCloud user-data built at create time; holds a password hash, never the password.",
    )
    user_data = models.TextField(
        blank=True,
        help_text="The customer's own user data (Linode's metadata.user_data, base64 as sent); the seed "
        "carries it beside the credentials.",
    )
    disk_mib = models.PositiveIntegerField(
        default=0,
        help_text="Capacity of the boot volume as the host last confirmed it: set when the volume is made, "
        "raised when it grows (it never shrinks). 0 until the create made it.",
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "label"],
                condition=Q(deleted_at__isnull=True),
                name="instance_label_unique_per_account",
            ),
            _choices_check("status", InstanceStatus, "instance_status_valid"),
        ]
        indexes = [models.Index(fields=["account", "deleted_at"])]

    def __str__(self) -> str:
        return f"{self.label} ({self.pk})"


class Allocation(models.Model):
    """What one instance holds on one host. Released, never deleted: the rows are the history."""

    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="allocations")
    host = models.ForeignKey("inventory.Host", on_delete=models.PROTECT, related_name="allocations")
    instance_type = models.ForeignKey("inventory.InstanceType", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    move_source = models.BooleanField(
        default=False,
        db_default=False,
        help_text="The instance is moving to another host: this allocation keeps its old host's resources "
        "until the disk copy is verified and the new domain defined, so a failed move goes back to it.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            # One home per instance, and while it moves across hosts, one allocation it moves from.
            models.UniqueConstraint(
                fields=["instance"],
                condition=Q(released_at__isnull=True, move_source=False),
                name="allocation_one_active_per_instance",
            ),
            models.UniqueConstraint(
                fields=["instance"],
                condition=Q(released_at__isnull=True, move_source=True),
                name="allocation_one_move_source_per_instance",
            ),
        ]
        indexes = [
            # A claim reads what a locked host's guests hold through this: a cost per host, not per fleet.
            models.Index(
                fields=["host"], condition=Q(released_at__isnull=True), name="allocation_active_by_host"
            ),
        ]

    def __str__(self) -> str:
        return f"allocation {self.pk} of instance {self.instance_id} on {self.host_id}"

    @property
    def active(self) -> bool:
        return self.released_at is None


class AllocatedGpu(models.Model):
    # released_at is copied from the allocation so the partial unique constraint can see it.
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="gpus")
    gpu = models.ForeignKey("inventory.GpuDevice", on_delete=models.PROTECT, related_name="allocations")
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "allocated GPU"
        constraints = [
            models.UniqueConstraint(
                fields=["gpu"], condition=Q(released_at__isnull=True), name="allocatedgpu_one_active_per_gpu"
            ),
        ]

    def __str__(self) -> str:
        return f"GPU {self.gpu_id} in allocation {self.allocation_id}"


class AllocatedCpu(models.Model):
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="cpus")
    cpu = models.ForeignKey("inventory.HostCpu", on_delete=models.PROTECT, related_name="allocations")
    vcpu = models.PositiveSmallIntegerField(help_text="The guest vCPU pinned to this host CPU.")
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["allocation_id", "vcpu"]
        verbose_name = "allocated CPU"
        constraints = [
            models.UniqueConstraint(
                fields=["cpu"], condition=Q(released_at__isnull=True), name="allocatedcpu_one_active_per_cpu"
            ),
            models.UniqueConstraint(fields=["allocation", "vcpu"], name="allocatedcpu_unique_vcpu"),
        ]

    def __str__(self) -> str:
        return f"vCPU {self.vcpu} on CPU {self.cpu_id} in allocation {self.allocation_id}"


class AllocatedMemory(models.Model):
    allocation = models.ForeignKey(Allocation, on_delete=models.CASCADE, related_name="memory")
    numa_node = models.ForeignKey("inventory.NumaNode", on_delete=models.PROTECT, related_name="allocations")
    memory_mib = models.PositiveBigIntegerField()
    hugepages_1g = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["allocation_id", "numa_node_id"]
        verbose_name_plural = "allocated memory"
        constraints = [
            models.UniqueConstraint(fields=["allocation", "numa_node"], name="allocatedmemory_unique_node"),
            models.CheckConstraint(condition=Q(memory_mib__gt=0), name="allocatedmemory_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.memory_mib} MiB on node {self.numa_node_id} in allocation {self.allocation_id}"


class JobAction(models.TextChoices):
    CREATE = "linode_create", "Create"
    BOOT = "linode_boot", "Boot"
    SHUTDOWN = "linode_shutdown", "Shut down"
    REBOOT = "linode_reboot", "Reboot"
    DELETE = "linode_delete", "Delete"
    RESIZE = "linode_resize", "Resize"
    REBUILD = "linode_rebuild", "Rebuild"
    PASSWORD = "password_reset", "Reset root password"


class JobStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    STARTED = "started", "Started"
    FINISHED = "finished", "Finished"
    FAILED = "failed", "Failed"
    # A delete took over: the job stops at its next step and undoes what it did (`superseded_by` says
    # which delete). `finished` is set once nothing of it can still touch the host.
    SUPERSEDED = "superseded", "Superseded"


class Job(models.Model):
    """One asynchronous operation on an instance: a row first, then a task. Linode events read from here."""

    Action = JobAction

    Status = JobStatus

    Origin = Origin

    IN_FLIGHT = (Status.SCHEDULED, Status.STARTED)
    DONE = (Status.FINISHED, Status.FAILED, Status.SUPERSEDED)

    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="jobs")
    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="jobs")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    origin = models.CharField(
        max_length=16,
        choices=Origin.choices,
        default=Origin.CUSTOMER,
        help_text="Who set it in motion: the account's user, a staff member, or the system (reconcile, "
        "schedule). The actor is the person, when there is one.",
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    percent_complete = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    step = models.CharField(max_length=64, blank=True, help_text="The last step that completed.")
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    request_id = models.CharField(
        max_length=128, blank=True, help_text="The id of the request that started it, in its log lines too."
    )
    superseded_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded"
    )
    lease_owner = models.CharField(
        max_length=128, blank=True, help_text="The worker running the job (host:pid:token) while it runs."
    )
    lease_expires_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The worker renews this while it runs; past it, the worker is taken for dead and the "
        "sweep runs the job again.",
    )
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # One job in flight per instance. A delete is accepted in any state: it supersedes the job
            # in flight (which leaves this set as `superseded`) in the transaction that inserts it.
            models.UniqueConstraint(
                fields=["instance"],
                condition=Q(status__in=["scheduled", "started"]),
                name="job_one_in_flight_per_instance",
            ),
            # Only a superseded job names the delete that took over (set in the delete's transaction).
            models.CheckConstraint(
                condition=Q(superseded_by__isnull=True) | Q(status="superseded"),
                name="job_only_superseded_names_a_delete",
            ),
            models.CheckConstraint(
                condition=Q(lease_expires_at__isnull=True) | Q(status__in=["started", "superseded"]),
                name="job_lease_only_while_running",
            ),
            _choices_check("action", JobAction, "job_action_valid"),
            _choices_check("status", JobStatus, "job_status_valid"),
            _choices_check("origin", Origin, "job_origin_valid"),
            models.CheckConstraint(condition=Q(percent_complete__lte=100), name="job_percent_at_most_100"),
        ]
        indexes = [
            models.Index(fields=["account", "created"]),
            # The sweep's question: which running jobs' leases expired.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status__in=["started", "superseded"]),
                name="job_running_by_lease",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.pk} ({self.status})"
