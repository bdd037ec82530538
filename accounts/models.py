from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q


class AccountKind(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    EMPLOYEE = "employee", "Employee"
    INTERNAL = "internal", "Internal"


class Account(models.Model):
    """Who pays: a customer, an employee team (tries dark-launched plans, is not charged), or internal."""

    Kind = AccountKind

    name = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CUSTOMER)
    email = models.EmailField()
    company = models.CharField(max_length=128, blank=True)
    country = models.CharField(
        max_length=2,
        blank=True,
        validators=[
            RegexValidator(r"^[A-Z]{2}$", "An ISO 3166-1 alpha-2 code in capitals, such as US or DE.")
        ],
        help_text="ISO 3166-1 alpha-2 in capitals (US, DE), as Linode's account shows it. Billing taxes "
        "invoices at this country's rate; empty: no tax.",
    )
    active = models.BooleanField(default=True)
    active_since = models.DateTimeField(auto_now_add=True)
    gpu_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How many GPUs its live instances may hold at once. Empty: the default for its kind "
        "(GPUADMIN_ACCOUNT_LIMITS).",
    )
    instance_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="How many live instances it may have at once. Empty: the default for its kind.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=AccountKind.values), name="account_kind_valid"),
            models.CheckConstraint(
                condition=Q(country="") | Q(country__regex=r"^[A-Z]{2}$"), name="account_country_iso"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_employee(self) -> bool:
        return self.kind == self.Kind.EMPLOYEE


class MembershipRole(models.TextChoices):
    OWNER = "owner", "Owner"
    MEMBER = "member", "Member"


class Membership(models.Model):
    """A user belongs to exactly one account, as on Linode."""

    Role = MembershipRole

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(role__in=MembershipRole.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account}"


class Origin(models.TextChoices):
    """Who set a change in motion: the account's own user, a staff member, or the system by itself."""

    CUSTOMER = "customer", "Customer"
    STAFF = "staff", "Staff"
    RECONCILE = "reconcile", "System: reconcile"
    SCHEDULE = "schedule", "System: schedule"


SYSTEM_ORIGINS = (Origin.RECONCILE, Origin.SCHEDULE)


class AuditRecord(models.Model):
    """Who changed what, written by the service that made the change (never by a signal)."""

    Origin = Origin

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.STAFF)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64)
    target_id = models.CharField(max_length=64)
    target_repr = models.CharField(max_length=255)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id"])]
        constraints = [
            models.CheckConstraint(condition=Q(origin__in=Origin.values), name="auditrecord_origin_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.action} {self.target_repr}"


class ApiToken(models.Model):
    """A personal access token. Only the SHA-256 of the secret is kept: the secret is shown once, and no
    part of it (no "first 8 characters") is stored, logged or audited; a token is known by id and label.

    A plain hash is enough (no salt, no slow KDF) because the secret is 256 random bits, not a password.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    label = models.CharField(max_length=100, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.CharField(max_length=512, default="*", help_text="'*' or pairs like linodes:read_write.")
    created = models.DateTimeField(auto_now_add=True)
    expiry = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "API token"
        constraints = [
            models.CheckConstraint(condition=~Q(scopes=""), name="apitoken_scopes_not_empty"),
            models.CheckConstraint(
                condition=Q(token_hash__regex=r"^[0-9a-f]{64}$"), name="apitoken_hash_sha256"
            ),
        ]

    def __str__(self) -> str:
        # By id and label: no part of the secret is kept anywhere, not even its first characters.
        return f"{self.label or 'token'} #{self.pk} of {self.user}"
