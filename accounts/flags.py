"""Feature flags and switches by name, and how code outside a request asks about them.

The flag model is swappable (settings.WAFFLE_FLAG_MODEL), so lower layers ask waffle for it
instead of importing it.
"""

from django.contrib.auth.models import AbstractBaseUser
from waffle import get_waffle_flag_model, switch_is_active

GPU_INSTANCES = "gpu_instances"
PROVISIONING_ENABLED = "provisioning_enabled"


def flag_active_for(*, name: str, user: AbstractBaseUser | None) -> bool:
    """Whether a flag is on for a user, decided as waffle decides for a request (without percentages)."""
    flag = get_waffle_flag_model().get(name)
    if not flag.pk:
        return False
    if flag.everyone:
        return True
    if flag.everyone is False or user is None:
        return False
    return bool(flag.is_active_for_user(user))


def gpu_plans_visible(*, user: AbstractBaseUser | None) -> bool:
    return flag_active_for(name=GPU_INSTANCES, user=user)


def provisioning_enabled() -> bool:
    return switch_is_active(PROVISIONING_ENABLED)
