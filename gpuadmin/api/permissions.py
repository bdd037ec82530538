from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.scopes import READ_ONLY, READ_WRITE, parse_scopes
from gpuadmin.api.authentication import INVALID_TOKEN

# A view's `scope` is a Linode scope area ("linodes"), PUBLIC (no token needed) or ANY_TOKEN.
PUBLIC = None
ANY_TOKEN = ""


def required_scope(view, request) -> str | None:
    """The scope this request needs, as X-Accepted-OAuth-Scopes names it, or None."""
    area = getattr(view, "scope", PUBLIC)
    if not area:
        return None
    return f"{area}:{READ_ONLY if request.method in SAFE_METHODS else READ_WRITE}"


class TokenScope(BasePermission):
    message = "Your OAuth token is not authorized to use this endpoint."

    def has_permission(self, request, view) -> bool:
        area = getattr(view, "scope", PUBLIC)
        if area is PUBLIC:
            return True
        if request.auth is None:
            raise NotAuthenticated(INVALID_TOKEN)
        if area == ANY_TOKEN:
            return True
        level = READ_ONLY if request.method in SAFE_METHODS else READ_WRITE
        return parse_scopes(request.auth.scopes).allows(area, level)
