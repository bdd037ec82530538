"""Usage segments, invoices and their items, promotions. Rows are written only by billing.services.

What the database guarantees, whatever the code does:
- an instance's segments form one chain (one first segment, one successor each, one open at a time,
  one per start), each with end >= start and non-negative snapshotted rates;
- one invoice per account and month, its total = subtotal + tax, tax only with a rate;
- a country's tax rates never overlap in time (PostgreSQL: an exclusion constraint);
- a segment's month is on at most one invoice item, ever: an hour cannot be billed twice;
- an item's amount, credit and price are never negative, a waived item charges nothing, and a credit
  never pays more than the item's price;
- a promotion never gives out more than it was granted.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from billing.months import month_label

MONEY = {"max_digits": 12, "decimal_places": 2}


class UsageSegment(models.Model):
    """A stretch of time an instance existed on one plan, with the plan's rates when it began.

    Opened when a create succeeds (from the instance's `created`), closed and followed by a new one
    when a resize finishes, closed when the instance is deleted. Never deleted, never re-priced.
    """

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="usage_segments")
    instance = models.ForeignKey(
        "provisioning.Instance", on_delete=models.PROTECT, related_name="usage_segments"
    )
    instance_type = models.ForeignKey("inventory.InstanceType", on_delete=models.PROTECT, related_name="+")
    price_hourly = models.DecimalField(max_digits=10, decimal_places=4)
    price_monthly = models.DecimalField(max_digits=10, decimal_places=2)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    piece_count = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Once closed: how many months it touches, so how many items bill it in full.",
    )
    previous = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="next"
    )
    job = models.ForeignKey(
        "provisioning.Job",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The create or resize job whose success began this segment.",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["instance_id", "started_at"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "started_at"], name="usagesegment_one_per_start"),
            models.UniqueConstraint(
                fields=["instance"], condition=Q(ended_at__isnull=True), name="usagesegment_one_open"
            ),
            models.UniqueConstraint(
                fields=["instance"], condition=Q(previous__isnull=True), name="usagesegment_one_first"
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="usagesegment_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(price_hourly__gte=0, price_monthly__gte=0), name="usagesegment_rates_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True, piece_count__isnull=True)
                | Q(ended_at__isnull=False, piece_count__isnull=False),
                name="usagesegment_closed_has_piece_count",
            ),
        ]
        indexes = [models.Index(fields=["account", "ended_at"])]

    def __str__(self) -> str:
        return f"instance {self.instance_id} on {self.instance_type_id} from {self.started_at:%Y-%m-%d %H:%M}"


class TaxRate(models.Model):
    """A country's tax rate from `valid_from` until `valid_until` (exclusive; empty: until further
    notice). Staff keep the table (billing.services.tax_rate_save); an invoice is taxed at the rate of
    its account's country that is in force on the invoice's date. A country's periods never overlap:
    the service says why, and on PostgreSQL an exclusion constraint (migration 0004) refuses it."""

    country = models.CharField(
        max_length=2,
        validators=[
            RegexValidator(r"^[A-Z]{2}$", "An ISO 3166-1 alpha-2 code in capitals, such as US or DE.")
        ],
        help_text="ISO 3166-1 alpha-2 in capitals, as on the account.",
    )
    name = models.CharField(
        max_length=64, help_text="What the invoice and its tax_summary call it: VAT, GST."
    )
    percent = models.DecimalField(
        max_digits=6,
        decimal_places=3,
        validators=[MinValueValidator(0), MaxValueValidator(Decimal("99.999"))],
        help_text="Percent of the subtotal after credits: 19.000 for 19 %. 0 is a rate too (shown, "
        "taxes nothing).",
    )
    valid_from = models.DateField(help_text="The first day (UTC) it applies.")
    valid_until = models.DateField(
        null=True,
        blank=True,
        help_text="The first day (UTC) it no longer applies; empty: until further notice.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["country", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["country", "valid_from"], name="taxrate_one_per_country_start"),
            models.CheckConstraint(condition=Q(country__regex=r"^[A-Z]{2}$"), name="taxrate_country_iso"),
            models.CheckConstraint(
                condition=Q(percent__gte=0, percent__lt=100), name="taxrate_percent_in_range"
            ),
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True) | Q(valid_until__gt=F("valid_from")),
                name="taxrate_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        until = f" until {self.valid_until:%Y-%m-%d}" if self.valid_until else ""
        percent = f"{self.percent.normalize():f}"
        return f"{self.country} {self.name} {percent} % from {self.valid_from:%Y-%m-%d}{until}"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"


class Invoice(models.Model):
    """One account's bill for one UTC month. A draft is rebuilt at will; a finalized one never changes."""

    Status = InvoiceStatus

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="invoices")
    period = models.DateField(help_text="The first day of the month billed.")
    date = models.DateTimeField(help_text="When the month billed closes: the invoice's date, as on Linode.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    subtotal = models.DecimalField(**MONEY, default=0)
    tax = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY, default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    tax_rate = models.ForeignKey(
        TaxRate,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="invoices",
        help_text="The rate applied when finalized; its name and percent are copied, so they never change.",
    )
    tax_name = models.CharField(max_length=64, blank=True)
    tax_percent = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)

    class Meta:
        ordering = ["-period", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "period"], name="invoice_one_per_account_month"),
            models.CheckConstraint(condition=Q(status__in=InvoiceStatus.values), name="invoice_status_valid"),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0, tax__gte=0, total__gte=0), name="invoice_amounts_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(total=F("subtotal") + F("tax")), name="invoice_total_is_subtotal_plus_tax"
            ),
            models.CheckConstraint(
                condition=Q(status="finalized", finalized_at__isnull=False)
                | Q(status="draft", finalized_at__isnull=True),
                name="invoice_finalized_has_time",
            ),
            models.CheckConstraint(
                condition=Q(tax_rate__isnull=False, tax_percent__isnull=False)
                | Q(tax_rate__isnull=True, tax=0),
                name="invoice_tax_has_rate",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} {month_label(self.period)} ({self.status})"

    @property
    def finalized(self) -> bool:
        return self.status == self.Status.FINALIZED


class PromotionKind(models.TextChoices):
    GPU_TRIAL = "gpu_trial", "GPU trial"


class Promotion(models.Model):
    """A credit an account may spend on usage inside [starts_at, expires_at); what is left then is lost."""

    Kind = PromotionKind

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="promotions")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    summary = models.CharField(max_length=128)
    credit = models.DecimalField(**MONEY, help_text="The amount granted.")
    used = models.DecimalField(
        **MONEY, default=0, help_text="The sum of the credit on invoice items, drafts included."
    )
    gpu_only = models.BooleanField(default=True)
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(kind="gpu_trial"), name="promotion_one_gpu_trial_per_account"
            ),
            models.CheckConstraint(condition=Q(kind__in=PromotionKind.values), name="promotion_kind_valid"),
            models.CheckConstraint(condition=Q(credit__gt=0), name="promotion_credit_positive"),
            models.CheckConstraint(
                condition=Q(used__gte=0, used__lte=F("credit")), name="promotion_used_within_credit"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("starts_at")), name="promotion_expires_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.summary} for {self.account}"

    @property
    def remaining(self):
        return self.credit - self.used


class InvoiceItemType(models.TextChoices):
    HOURLY = "hourly", "Hourly"


class InvoiceItem(models.Model):
    """One usage segment inside one month: its hours, its price, and what was taken off and why.

    `period` is the month the hours belong to; it differs from the invoice's month only for usage
    that became known after its own month's invoice was finalized (a correction: a new row on the
    next invoice, never a change to the finalized one).
    """

    Type = InvoiceItemType

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="items")
    segment = models.ForeignKey(UsageSegment, on_delete=models.PROTECT, related_name="items")
    period = models.DateField(help_text="The first day of the month the hours belong to.")
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.HOURLY)
    label = models.CharField(max_length=255)
    region = models.CharField(max_length=64)
    from_at = models.DateTimeField()
    to_at = models.DateTimeField()
    quantity = models.PositiveIntegerField(help_text="Hours, each started hour counted whole.")
    unit_price = models.DecimalField(max_digits=10, decimal_places=4)
    list_amount = models.DecimalField(**MONEY, help_text="min(quantity x unit price, monthly cap), in cents.")
    credit = models.DecimalField(**MONEY, default=0)
    promotion = models.ForeignKey(
        Promotion, null=True, blank=True, on_delete=models.PROTECT, related_name="items"
    )
    waived_reason = models.CharField(
        max_length=128, blank=True, help_text="Why the account is not charged, decided when rated."
    )
    amount = models.DecimalField(**MONEY)
    tax = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["from_at", "id"]
        constraints = [
            # The ledger: each month of a segment is billed once, on one invoice.
            models.UniqueConstraint(
                fields=["segment", "period"], name="invoiceitem_segment_month_billed_once"
            ),
            models.CheckConstraint(
                condition=Q(type__in=InvoiceItemType.values), name="invoiceitem_type_valid"
            ),
            models.CheckConstraint(condition=Q(to_at__gt=F("from_at")), name="invoiceitem_to_after_from"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="invoiceitem_at_least_an_hour"),
            models.CheckConstraint(
                condition=Q(list_amount__gte=0, credit__gte=0, amount__gte=0, tax__gte=0, total__gte=0),
                name="invoiceitem_amounts_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(amount__lte=F("list_amount"), credit__lte=F("list_amount")),
                name="invoiceitem_never_above_price",
            ),
            models.CheckConstraint(condition=Q(total=F("amount") + F("tax")), name="invoiceitem_total"),
            models.CheckConstraint(
                condition=Q(waived_reason="") | Q(amount=0, credit=0), name="invoiceitem_waived_is_free"
            ),
            models.CheckConstraint(
                condition=Q(promotion__isnull=True, credit=0) | Q(promotion__isnull=False, credit__gt=0),
                name="invoiceitem_credit_names_promotion",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.from_at:%Y-%m-%d %H:%M} - {self.to_at:%Y-%m-%d %H:%M}"
