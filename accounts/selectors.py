from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Account, ApiToken
from accounts.tokens import hash_secret


def account_of(*, user: AbstractBaseUser | None) -> Account | None:
    """The account a user acts for, or None for anonymous users and users in no account."""
    if user is None or not user.is_authenticated:
        return None
    membership = getattr(user, "membership", None)
    return membership.account if membership is not None else None


def api_token_by_secret(*, secret: str) -> ApiToken | None:
    """The token a bearer secret names, with its user and account, or None. Expiry is the caller's call."""
    return (
        ApiToken.objects.select_related("user__membership__account")
        .filter(token_hash=hash_secret(secret))
        .first()
    )
