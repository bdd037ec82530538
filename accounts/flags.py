"""Feature flags and switches by name, and how code outside a request asks about them.

The flag model is swappable (settings.WAFFLE_FLAG_MODEL), so lower layers ask waffle for it
instead of importing it.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.contrib.auth.models import AbstractBaseUser
from waffle import get_waffle_flag_model, switch_is_active

from accounts.models import Account
from accounts.selectors import account_of

GPU_INSTANCES = "gpu_instances"
PROVISIONING_ENABLED = "provisioning_enabled"

# What flags and switches said during the current request (None outside one): a create asks about the
# GPU flag for its plan and again for its account, and each answer is three queries when flags are
# read from the database (no shared cache).
_answers: ContextVar[dict | None] = ContextVar("flag_answers", default=None)


@contextmanager
def answers_kept() -> Iterator[None]:
    """Within the block, each flag or switch is decided once per user: one request, one answer, however
    often its views and services ask. The next request asks again."""
    token = _answers.set({})
    try:
        yield
    finally:
        _answers.reset(token)


def _kept(key: tuple, decide: Callable[[], bool]) -> bool:
    answers = _answers.get()
    if answers is None:
        return decide()
    if key not in answers:
        answers[key] = decide()
    return answers[key]


def flag_active_for(*, name: str, user: AbstractBaseUser | None) -> bool:
    """Whether a flag is on for a user, decided as waffle decides for a request (without percentages)."""
    who = None if user is None else ("user", user.pk)  # an anonymous user's pk is None
    return _kept(("flag", name, who), lambda: _flag_active_for(name=name, user=user))


def _flag_active_for(*, name: str, user: AbstractBaseUser | None) -> bool:
    flag = get_waffle_flag_model().get(name)
    if not flag.pk:
        return False
    if flag.everyone:
        return True
    if flag.everyone is False or user is None:
        return False
    return bool(flag.is_active_for_user(user))


def flag_active_for_account(*, name: str, account: Account) -> bool:
    """Whether a flag is on for a whole account: for everyone, or for the account (by kind or by name)."""
    flag = get_waffle_flag_model().get(name)
    if not flag.pk:
        return False
    if flag.everyone is not None:
        return bool(flag.everyone)
    return bool(flag.is_active_for_account(account))


def gpu_plans_visible(*, user: AbstractBaseUser | None) -> bool:
    return flag_active_for(name=GPU_INSTANCES, user=user)


def gpu_plans_visible_to_account(*, account: Account) -> bool:
    return flag_active_for_account(name=GPU_INSTANCES, account=account)


def gpu_plans_visible_for(*, actor: AbstractBaseUser | None, account: Account) -> bool:
    """Whether `actor` may buy GPU plans for `account`: the flag as the account's own user sees it.

    A user of the account is asked about as a person (a user or group entry lets them in, as in the
    API); anyone acting for another account (staff) is not, so staff cannot create for an account what
    that account could not create itself."""
    own = account_of(user=actor)
    if own is not None and own.pk == account.pk:
        return gpu_plans_visible(user=actor)
    return gpu_plans_visible_to_account(account=account)


def provisioning_enabled() -> bool:
    return _kept(("switch", PROVISIONING_ENABLED), lambda: switch_is_active(PROVISIONING_ENABLED))
