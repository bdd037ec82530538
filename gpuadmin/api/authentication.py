from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied

from accounts.selectors import account_of, api_token_by_secret
from accounts.services import api_token_mark_used

INVALID_TOKEN = "Invalid Token"
ACCOUNT_SUSPENDED = "Your account is suspended; contact support to reactivate it."


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <personal access token>`. A token that is wrong, expired or whose user is
    inactive is a 401 everywhere, public endpoints included, as on Linode. A valid token of a suspended
    account (Account.active off) is a 403 everywhere: the token is right, the account may not use it."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, secret = header.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or len(secret) > 256:
            raise AuthenticationFailed(INVALID_TOKEN)
        token = api_token_by_secret(secret=secret)
        now = timezone.now()
        if token is None or not token.user.is_active or (token.expiry is not None and token.expiry <= now):
            raise AuthenticationFailed(INVALID_TOKEN)
        account = account_of(user=token.user)  # selected with the token: no extra query
        if account is not None and not account.active:
            raise PermissionDenied(ACCOUNT_SUSPENDED)
        api_token_mark_used(token=token, now=now)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="gpuadmin"'
