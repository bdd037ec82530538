from django.db import models
from waffle.models import AbstractUserFlag

from accounts.selectors import account_of


class Flag(AbstractUserFlag):
    """A waffle flag that can also be turned on per account, or for every employee account.

    Dark launch: on for employee accounts; launch: `everyone` on. Neither needs a code change.
    """

    accounts = models.ManyToManyField(
        "accounts.Account", blank=True, help_text="Activate this flag for every user of these accounts."
    )
    employee_accounts = models.BooleanField(
        default=False, help_text="Activate this flag for every user of every employee account."
    )

    class Meta(AbstractUserFlag.Meta):
        verbose_name = "Flag"
        verbose_name_plural = "Flags"

    def is_active_for_user(self, user) -> bool | None:
        # Any rule that lets the user in decides. When the user's account came with the user (the API's
        # token lookup selects it), the employee rule needs no query and is asked first: an employee of
        # a dark launch is let in before waffle reads the flag's users and groups.
        in_hand = _account_in_hand(user)
        if in_hand is not None and self.employee_accounts and in_hand.is_employee:
            return True
        is_active = super().is_active_for_user(user)
        if is_active:
            return is_active
        account = account_of(user=user)
        if account is None:
            return None
        return self.is_active_for_account(account)

    def is_active_for_account(self, account) -> bool | None:
        """Whether the flag lets a whole account in (every employee account, or this one by name).

        Users, groups, staff and superusers are per person: they never let an account in."""
        if self.employee_accounts and account.is_employee:
            return True
        if self.pk and self.accounts.filter(pk=account.pk).exists():
            return True
        return None


def _account_in_hand(user):
    """The user's account when it was read with the user, else None: asking costs no query."""
    membership = getattr(type(user), "membership", None)  # the reverse one-to-one's descriptor
    if membership is None or not membership.is_cached(user):
        return None
    return account_of(user=user)


class WorkerHeartbeat(models.Model):
    """Written every minute by a scheduled task (gpuadmin.tasks.heartbeat). Its age says whether some
    worker cluster takes tasks off the queue: the schedule, the broker, a worker and the database all
    had to work for it to be fresh."""

    name = models.CharField(max_length=64, unique=True)
    beat_at = models.DateTimeField()
    worker = models.CharField(max_length=255, help_text="The machine and process that wrote the last beat.")

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S} by {self.worker}"
