"""The tax rate table, kept by staff: no overlapping periods per country, used rates keep their terms."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from accounts.services import audit_record
from billing import selectors
from billing.exceptions import TaxRateRefused
from billing.models import Invoice, TaxRate


def tax_rate_refusal(*, tax_rate: TaxRate) -> str | None:
    """Why this rate may not be saved, or None. A country's periods never overlap, and a rate that
    taxed a finalized invoice keeps its country, name, percent and start (an invoice names the rate
    it used); it may still be ended, as long as every invoice it taxed stays inside. The admin's form
    asks this to show the reason on the form; `tax_rate_save` asks it again under a lock."""
    if tax_rate.pk is not None:
        before = TaxRate.objects.get(pk=tax_rate.pk)
        used = Invoice.objects.filter(tax_rate=before)
        terms = ("country", "name", "percent", "valid_from")
        changed = [name for name in terms if getattr(before, name) != getattr(tax_rate, name)]
        if changed and used.exists():
            return (
                f"{before} taxed {used.count()} finalized invoice(s); its {', '.join(changed)} cannot "
                "change. End it (set the day it stops) and add the next rate instead."
            )
        last = used.order_by("-date").values_list("date", flat=True).first()
        if last is not None and tax_rate.valid_until is not None and last.date() >= tax_rate.valid_until:
            return f"{before} taxed an invoice dated {last:%Y-%m-%d}; it cannot end on or before that day."
    overlapping = selectors.tax_rates_overlapping(tax_rate=tax_rate)
    if overlapping:
        return (
            f"{tax_rate.country} already has a rate for part of that time: {overlapping[0]}. "
            "End that one first, or start this one after it."
        )
    return None


def tax_rate_save(*, tax_rate: TaxRate, actor: AbstractBaseUser | None = None) -> TaxRate:
    """Add a tax rate or change one (see `tax_rate_refusal` for what is refused), audit-recorded."""
    tax_rate.full_clean(validate_constraints=False)
    with transaction.atomic():
        # Rates of one country are written one at a time: lock the country's rows, then check.
        list(TaxRate.objects.select_for_update().filter(country=tax_rate.country).values_list("pk"))
        refusal = tax_rate_refusal(tax_rate=tax_rate)
        if refusal:
            raise TaxRateRefused(refusal)
        try:
            with transaction.atomic():
                tax_rate.save()
        except IntegrityError as exc:  # a first rate of the country written between the check and here
            raise TaxRateRefused(f"{tax_rate.country} already has a rate for part of that time.") from exc
        audit_record(actor=actor, action="tax_rate.save", target=tax_rate, detail=str(tax_rate))
    return tax_rate
