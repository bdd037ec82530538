from decimal import Decimal, InvalidOperation

from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        checks.register(trial_credit_check)


def trial_credit_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A mistyped trial credit is caught at start-up, not when the first trial is granted."""
    value = getattr(settings, "GPUADMIN_GPU_TRIAL_CREDIT", "")
    try:
        credit = Decimal(str(value))
    except InvalidOperation:
        credit = None
    if credit is None or not credit.is_finite() or credit <= 0 or credit != credit.quantize(Decimal("0.01")):
        return [
            checks.Error(
                f"GPUADMIN_GPU_TRIAL_CREDIT must be a positive amount in dollars and cents, got {value!r}.",
                id="billing.E001",
            )
        ]
    return []
