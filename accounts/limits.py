"""How much an account may hold at once: its own limits, or its kind's default (a setting)."""

from dataclasses import dataclass

from django.conf import settings

from accounts.models import Account

__all__ = ["AccountLimits", "Limit", "account_limits"]


@dataclass(frozen=True)
class Limit:
    value: int | None  # None: no limit
    default: bool  # the kind's default (GPUADMIN_ACCOUNT_LIMITS), not set on the account

    def __str__(self) -> str:
        shown = "no limit" if self.value is None else str(self.value)
        return f"{shown} (default)" if self.default else shown

    def allows(self, total: int) -> bool:
        return self.value is None or total <= self.value


@dataclass(frozen=True)
class AccountLimits:
    gpus: Limit
    instances: Limit


def account_limits(*, account: Account) -> AccountLimits:
    defaults = settings.GPUADMIN_ACCOUNT_LIMITS.get(account.kind, {})

    def limit(own: int | None, key: str) -> Limit:
        return Limit(own, False) if own is not None else Limit(defaults.get(key), True)

    return AccountLimits(
        gpus=limit(account.gpu_limit, "gpus"), instances=limit(account.instance_limit, "instances")
    )
