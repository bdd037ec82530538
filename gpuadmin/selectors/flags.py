"""Who sees the GPU plans now, in words (the flag panel)."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from waffle.models import Switch

from accounts.flags import (
    GPU_INSTANCES,
    PROVISIONING_ENABLED,
    gpu_plans_visible,
)
from accounts.models import Account
from gpuadmin.models import Flag

__all__ = ["FlagAudience", "gpu_plans_audience"]

# Listed accounts and users shown by name on the dashboard; the rest are counted.
NAMES_SHOWN = 8


@dataclass(frozen=True)
class FlagAudience:
    """Who the GPU-plans flag lets in, in words, and the facts behind them."""

    flag_id: int | None
    summary: str
    launched: bool
    audiences: list[str]
    visible_to_you: bool
    provisioning_enabled: bool
    switch_id: int | None


def gpu_plans_audience(*, user: AbstractBaseUser) -> FlagAudience:
    flag = Flag.objects.filter(name=GPU_INSTANCES).first()
    switch = Switch.objects.filter(name=PROVISIONING_ENABLED).first()
    visible = gpu_plans_visible(user=user)
    switch_on = bool(switch and switch.active)
    if flag is None:
        return FlagAudience(None, "Nobody: the flag does not exist", False, [], visible, switch_on, None)
    if flag.everyone:
        summary, audiences = "Everyone: GPU plans are launched", []
    elif flag.everyone is False:
        summary, audiences = "Nobody: the flag is forced off for everyone", []
    else:
        audiences = _audiences(flag)
        summary = "Only: " + "; ".join(audiences) if audiences else "Nobody: the flag lets no one in"
    return FlagAudience(
        flag.pk, summary, bool(flag.everyone), audiences, visible, switch_on, switch.pk if switch else None
    )


def _audiences(flag: Flag) -> list[str]:
    audiences = []
    if flag.employee_accounts:
        employees = Account.objects.filter(kind=Account.Kind.EMPLOYEE).count()
        audiences.append(f"every employee account ({employees})")
    accounts = flag.accounts.order_by("name").values_list("name", flat=True)
    if names := _names(accounts):
        audiences.append(f"accounts {names}")
    users = flag.users.order_by("username").values_list("username", flat=True)
    if names := _names(users):
        audiences.append(f"users {names}")
    groups = list(flag.groups.order_by("name").values_list("name", flat=True))
    if groups:
        audiences.append("groups " + ", ".join(groups))
    if flag.superusers:
        audiences.append("superusers")
    if flag.staff:
        audiences.append("staff")
    if flag.authenticated:
        audiences.append("every signed-in user")
    return audiences


def _names(names) -> str:
    """The first names of a queryset, and how many more (counted only when there are more)."""
    first = list(names[: NAMES_SHOWN + 1])
    shown = ", ".join(first[:NAMES_SHOWN])
    return f"{shown} and {names.count() - NAMES_SHOWN} more" if len(first) > NAMES_SHOWN else shown
