from django.contrib.auth.models import AbstractBaseUser

from accounts.models import Account, ApiToken, Origin
from accounts.tokens import hash_secret
from gpuadmin.queries import PreparedRead


def account_of(*, user: AbstractBaseUser | None) -> Account | None:
    """The account a user acts for, or None for anonymous users and users in no account."""
    if user is None or not user.is_authenticated:
        return None
    membership = getattr(user, "membership", None)
    return membership.account if membership is not None else None


_TOKEN_BY_HASH = PreparedRead(
    lambda token_hash: (
        ApiToken.objects.select_related("user__membership__account")
        .filter(token_hash=token_hash)
        .order_by()[:1]
    ),
    token_hash=str,
)


def api_token_by_secret(*, secret: str) -> ApiToken | None:
    """The token a bearer secret names, with its user and account, or None. Expiry is the caller's call.
    Every API request asks: the read is compiled once per connection (PreparedRead)."""
    return _TOKEN_BY_HASH.first(token_hash=hash_secret(secret))


def origin_of(*, actor: AbstractBaseUser | None, account: Account | None = None) -> str:
    """Who is behind a change when the caller does not say: nobody is the system on a schedule, a user of
    the account is its customer (staff acting for their own account included), anyone else is staff."""
    if actor is None or not actor.is_authenticated:
        return Origin.SCHEDULE
    own = account_of(user=actor)
    if account is not None and own is not None and own.pk == account.pk:
        return Origin.CUSTOMER
    return Origin.STAFF if actor.is_staff else Origin.CUSTOMER
