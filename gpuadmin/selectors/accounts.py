"""The staff's account page: what an account holds and may buy (billing's admin adds what it owes)."""

from dataclasses import dataclass

from django.db.models import Prefetch

from accounts.flags import (
    GPU_INSTANCES,
    gpu_plans_visible_to_account,
)
from accounts.limits import AccountLimits, account_limits
from accounts.models import Account
from gpuadmin.models import Flag
from provisioning.models import AllocatedGpu, Allocation, Instance
from provisioning.selectors import AccountUsage, account_usage

__all__ = ["AccountAccess", "AccountOverview", "HeldInstance", "account_overview"]


@dataclass(frozen=True)
class HeldInstance:
    """One live instance of an account, with what it holds now."""

    instance_id: int
    label: str
    status: str
    plan: str
    region: str
    host_id: int | None
    hostname: str
    gpus: list[str]  # PCI addresses of the cards it holds now
    created: object


@dataclass(frozen=True)
class AccountAccess:
    sees_gpu_plans: bool
    why: str


@dataclass
class AccountOverview:
    """What the staff's account page shows of what an account holds and may buy, section by section
    (each a template include: add one by adding a field here and a section in
    admin/accounts/account/overview.html). Balances, trial and invoices are billing's (billing.admin)."""

    account: Account
    instances: list[HeldInstance]
    deleted_instances: int
    hosts: list[tuple[int, str, int]]  # (host id, hostname, cards held there)
    access: AccountAccess
    limits: AccountLimits
    usage: AccountUsage

    @property
    def gpus_held(self) -> int:
        return sum(len(i.gpus) for i in self.instances)


def account_overview(*, account: Account) -> AccountOverview:
    """The account's live instances with the cards and hosts they hold, and its GPU access: a fixed
    number of queries whatever the fleet or the account's history."""
    active_gpus = Prefetch(
        "allocations",
        queryset=Allocation.objects.filter(released_at__isnull=True).prefetch_related(
            Prefetch(
                "gpus",
                queryset=AllocatedGpu.objects.filter(released_at__isnull=True)
                .select_related("gpu")
                .order_by("gpu__pci_address"),
            )
        ),
        to_attr="active_allocations",
    )
    live = (
        Instance.objects.filter(account=account, deleted_at__isnull=True)
        .select_related("host")
        .prefetch_related(active_gpus)
        .order_by("-id")
    )
    instances, hosts = [], {}
    for instance in live:
        gpus = [row.gpu.pci_address for a in instance.active_allocations for row in a.gpus.all()]
        instances.append(
            HeldInstance(
                instance_id=instance.pk,
                label=instance.label,
                status=instance.status,
                plan=instance.instance_type_id,
                region=instance.region_id,
                host_id=instance.host_id,
                hostname=instance.host.hostname if instance.host_id else "",
                gpus=gpus,
                created=instance.created,
            )
        )
        if instance.active_allocations and instance.host_id:
            entry = hosts.setdefault(instance.host_id, [instance.host.hostname, 0])
            entry[1] += len(gpus)
    return AccountOverview(
        account=account,
        instances=instances,
        deleted_instances=Instance.objects.filter(account=account, deleted_at__isnull=False).count(),
        hosts=sorted(((pk, name, n) for pk, (name, n) in hosts.items()), key=lambda h: h[1]),
        access=_access(account),
        limits=account_limits(account=account),
        usage=account_usage(account_id=account.pk),
    )


def _access(account: Account) -> AccountAccess:
    """Whether the account may buy GPU plans (accounts.flags decides), and why, in words."""
    sees = gpu_plans_visible_to_account(account=account)
    flag = Flag.objects.filter(name=GPU_INSTANCES).first()
    if flag is None:
        why = "the gpu_instances flag does not exist"
    elif flag.everyone is not None:
        why = (
            "GPU plans are launched for everyone" if flag.everyone else "the flag is forced off for everyone"
        )
    elif sees and flag.employee_accounts and account.is_employee:
        why = "an employee account, and the flag lets every employee account in"
    elif sees:
        why = "the gpu_instances flag names this account"
    else:
        why = "the gpu_instances flag does not let this account in (a user may still be let in by name)"
    return AccountAccess(sees, why)
