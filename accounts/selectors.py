from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Account


def account_of(*, user: AbstractBaseUser | None) -> Account | None:
    """The account a user acts for, or None for anonymous users and users in no account."""
    if user is None or not user.is_authenticated:
        return None
    membership = getattr(user, "membership", None)
    return membership.account if membership is not None else None
