"""Billing in the admin. Invoices, items, segments and promotions are read-only: they change only
through billing.services (the `bill` command, the schedule, the trial grant). Staff can:

- grant the GPU trial from an account's page (a button, and an action on the account list) and see
  the account's balances, its trial's remaining credit and its invoices month by month;
- download a finalized invoice as a PDF, and a month's items as CSV;
- keep the tax rate table (each save goes through `tax_rate_save`, which refuses overlaps).

The account page is accounts' AccountAdmin with billing added to it here: accounts sits below billing
and cannot import it.
"""

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.admin import AccountAdmin as BaseAccountAdmin
from accounts.models import Account
from billing import selectors
from billing.documents import invoice_pdf, month_items_csv
from billing.exceptions import BillingError
from billing.models import Invoice, InvoiceItem, Promotion, TaxRate, UsageSegment
from billing.months import month_label, month_of, parse_month
from billing.services import promotion_grant_gpu_trial, tax_rate_refusal, tax_rate_save


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class InvoiceItemInline(admin.TabularInline):
    model = InvoiceItem
    extra = 0
    can_delete = False
    fields = [
        "label",
        "period",
        "from_at",
        "to_at",
        "quantity",
        "unit_price",
        "list_amount",
        "credit",
        "waived_reason",
        "amount",
        "tax",
        "total",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def pdf_link(invoice: Invoice) -> str:
    if not invoice.finalized:
        return "draft: no PDF until finalized"
    url = reverse("admin:billing_invoice_pdf", args=[invoice.pk])
    return format_html('<a href="{}" class="invoice-pdf">PDF</a>', url)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ["id", "account", "period", "status", "subtotal", "tax", "total", "finalized_at", "pdf"]
    list_filter = ["status", "period", "account__kind"]
    search_fields = ["account__name"]
    list_select_related = ["account"]
    date_hierarchy = "date"
    readonly_fields = ["pdf", "tax_summary"]
    inlines = [InvoiceItemInline]

    @admin.display(description="PDF")
    def pdf(self, invoice: Invoice) -> str:
        return pdf_link(invoice)

    @admin.display(description="Tax")
    def tax_summary(self, invoice: Invoice) -> str:
        if invoice.tax_rate_id is None:
            return "no tax rate applied" if invoice.finalized else "set when finalized"
        return f"{invoice.tax_name} {invoice.tax_percent.normalize():f} %: {invoice.tax}"

    def get_urls(self):
        return [
            path(
                "<int:invoice_id>/pdf/", self.admin_site.admin_view(self.pdf_view), name="billing_invoice_pdf"
            ),
            *super().get_urls(),
        ]

    def pdf_view(self, request, invoice_id: int):
        if not self.has_view_permission(request):
            raise Http404
        invoice = get_object_or_404(Invoice, pk=invoice_id, status=Invoice.Status.FINALIZED)
        response = HttpResponse(
            invoice_pdf(selectors.invoice_document(invoice=invoice)), content_type="application/pdf"
        )
        response["Content-Disposition"] = f'attachment; filename="invoice-{invoice.pk}.pdf"'
        return response


@admin.register(InvoiceItem)
class InvoiceItemAdmin(ReadOnlyAdmin):
    list_display = [
        "invoice",
        "label",
        "period",
        "quantity",
        "unit_price",
        "list_amount",
        "credit",
        "amount",
        "tax",
        "total",
    ]
    list_filter = ["period", "type"]
    search_fields = ["label", "invoice__account__name"]
    list_select_related = ["invoice__account"]
    raw_id_fields = ["invoice", "segment", "promotion"]
    change_list_template = "admin/billing/invoiceitem/change_list.html"

    def get_urls(self):
        return [
            path("csv/", self.admin_site.admin_view(self.csv_view), name="billing_invoiceitem_csv"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        default = month_label(month_of(timezone.now()))
        return super().changelist_view(request, extra_context={"csv_month": default, **(extra_context or {})})

    def csv_view(self, request):
        """Every item on the invoices of ?month=YYYY-MM, drafts included (a column says which)."""
        if not self.has_view_permission(request):
            raise Http404
        try:
            month = parse_month(request.GET.get("month", ""))
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:billing_invoiceitem_changelist"))
        response = StreamingHttpResponse(month_items_csv(month=month), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="invoice-items-{month_label(month)}.csv"'
        return response


@admin.register(UsageSegment)
class UsageSegmentAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "instance",
        "account",
        "instance_type",
        "price_hourly",
        "price_monthly",
        "started_at",
        "ended_at",
    ]
    list_filter = ["instance_type"]
    search_fields = ["instance__label", "account__name"]
    list_select_related = ["instance", "account", "instance_type"]
    raw_id_fields = ["instance", "account", "previous", "job"]


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    list_display = ["account", "summary", "credit", "used", "starts_at", "expires_at"]
    list_filter = ["kind"]
    search_fields = ["account__name"]
    list_select_related = ["account"]


class TaxRateForm(forms.ModelForm):
    class Meta:
        model = TaxRate
        fields = ["country", "name", "percent", "valid_from", "valid_until"]

    def clean(self):
        cleaned = super().clean()
        if not self.errors:
            # The form's instance gets the cleaned values only after clean(): ask about them as a row.
            proposed = TaxRate(pk=self.instance.pk, **{name: cleaned.get(name) for name in self.Meta.fields})
            refusal = tax_rate_refusal(tax_rate=proposed)
            if refusal:
                raise forms.ValidationError(refusal)
        return cleaned


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    form = TaxRateForm
    list_display = ["country", "name", "percent", "valid_from", "valid_until", "invoices_taxed"]
    list_filter = ["country"]
    search_fields = ["country", "name"]
    ordering = ["country", "-valid_from"]

    @admin.display(description="Invoices taxed")
    def invoices_taxed(self, tax_rate: TaxRate) -> int:
        return tax_rate.invoices.count()

    def save_model(self, request, obj, form, change):
        tax_rate_save(tax_rate=obj, actor=request.user)

    def has_delete_permission(self, request, obj=None):
        # A rate that taxed an invoice stays (the invoice names it); one never used may go.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.invoices.exists())


# ---------------------------------------------------------------------------------------------------
# The account page


class AccountPromotionInline(admin.TabularInline):
    model = Promotion
    extra = 0
    can_delete = False
    verbose_name_plural = "Promotions (grant the GPU trial with the button above)"
    fields = ["summary", "credit", "used", "starts_at", "expires_at", "granted_by"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


admin.site.unregister(Account)


@admin.register(Account)
class AccountAdmin(BaseAccountAdmin):
    change_form_template = "admin/billing/account/change_form.html"
    inlines = [*BaseAccountAdmin.inlines, AccountPromotionInline]
    actions = [*(BaseAccountAdmin.actions or []), "grant_gpu_trial"]

    def get_readonly_fields(self, request, obj=None):
        fields = [*super().get_readonly_fields(request, obj)]
        return fields + ["billing", "invoices_by_month"] if obj is not None else fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        (name, options), *rest = fieldsets
        fields = [f for f in options["fields"] if f not in ("billing", "invoices_by_month")]
        return [
            (name, {**options, "fields": fields}),
            *rest,
            ("Billing", {"fields": ["billing", "invoices_by_month"]}),
        ]

    @admin.display(description="Balances")
    def billing(self, account: Account) -> str:
        billing = selectors.account_billing(account=account)
        trials = selectors.account_promotions(account=account)
        rows = [
            ("Invoiced (finalized invoices)", f"${billing.balance:.2f}"),
            ("Not invoiced yet, up to now (before tax)", f"${billing.balance_uninvoiced:.2f}"),
            ("of which this month", f"${billing.current_month:.2f}"),
        ]
        for promotion in trials:
            state = "expired" if promotion.expires_at <= timezone.now() else "active"
            remaining = billing.credit_remaining.get(promotion.pk, promotion.remaining)
            rows.append(
                (
                    f"{promotion.summary} ({state}, until {promotion.expires_at:%Y-%m-%d %H:%M} UTC)",
                    f"${remaining:.2f} of ${promotion.credit:.2f} left",
                )
            )
        if not trials:
            rows.append(("GPU trial", "not granted"))
        return format_html(
            '<table class="account-billing">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        )

    @admin.display(description="Invoices by month")
    def invoices_by_month(self, account: Account) -> str:
        invoices = selectors.account_invoices(account=account)
        if not invoices:
            return "no invoices yet"
        rows = [
            (
                month_label(invoice.period),
                invoice.get_status_display(),
                f"${invoice.subtotal:.2f}",
                f"${invoice.tax:.2f}",
                f"${invoice.total:.2f}",
                format_html(
                    '<a href="{}">open</a>', reverse("admin:billing_invoice_change", args=[invoice.pk])
                ),
                pdf_link(invoice),
            )
            for invoice in invoices
        ]
        return format_html(
            '<table class="account-invoices"><tr><th>Month</th><th>Status</th><th>Subtotal</th><th>Tax</th>'
            "<th>Total</th><th></th><th></th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rows,
            ),
        )

    def get_urls(self):
        return [
            path(
                "<int:account_id>/grant-gpu-trial/",
                self.admin_site.admin_view(self.grant_gpu_trial_view),
                name="accounts_account_grant_gpu_trial",
            ),
            *super().get_urls(),
        ]

    def grant_gpu_trial_view(self, request, account_id: int):
        """GET asks to confirm; POST grants (once: the service refuses a second trial)."""
        if not self.has_change_permission(request):
            raise Http404
        account = get_object_or_404(Account, pk=account_id)
        page = reverse("admin:accounts_account_change", args=[account.pk])
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "title": "Grant the GPU trial",
                "account": account,
                "opts": self.model._meta,
                "back": page,
            }
            return TemplateResponse(request, "admin/billing/account/grant_gpu_trial.html", context)
        self._grant(request, account)
        return HttpResponseRedirect(page)

    @admin.action(description="Grant the GPU trial to selected accounts", permissions=["change"])
    def grant_gpu_trial(self, request, queryset):
        for account in queryset.order_by("pk"):
            self._grant(request, account)

    def _grant(self, request, account: Account) -> None:
        try:
            promotion = promotion_grant_gpu_trial(account=account, actor=request.user)
        except BillingError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(
                request,
                f"{account}: {promotion.summary}, until {promotion.expires_at:%Y-%m-%d %H:%M} UTC.",
                messages.SUCCESS,
            )
