"""Domain errors of billing. The command, the admin and the API translate them; none of them knows HTTP."""


class BillingError(Exception):
    """A billing request that cannot be carried out, with a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvoiceFinalized(BillingError):
    """A finalized invoice never changes: usage found later goes on the next invoice."""


class MonthNotOver(BillingError):
    """An invoice is finalized only once the month it bills has ended."""


class PromotionRefused(BillingError):
    """The account may not have this promotion (it has one already, or it is never charged)."""


class TaxRateRefused(BillingError):
    """A tax rate that would overlap another of its country, or rewrite what an invoice was taxed at."""
