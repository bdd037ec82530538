"""Base classes for API views: every endpoint gets the same authentication, scopes, limits and headers."""

from rest_framework import generics
from rest_framework.exceptions import NotFound
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from accounts.flags import answers_kept, gpu_plans_visible
from accounts.selectors import account_of
from gpuadmin.api.authentication import BearerTokenAuthentication
from gpuadmin.api.filtering import XFilterBackend
from gpuadmin.api.pagination import LinodePagination
from gpuadmin.api.parsers import LinodeJSONParser
from gpuadmin.api.permissions import PUBLIC, TokenScope, required_scope
from gpuadmin.api.throttling import LinodeRateLimit, rate_limit_headers


class LinodeMixin:
    """`scope` is the Linode scope area the view needs (PUBLIC: none, ANY_TOKEN: any valid token)."""

    scope: str | None = PUBLIC
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [TokenScope]
    throttle_classes = [LinodeRateLimit]
    renderer_classes = [JSONRenderer]
    parser_classes = [LinodeJSONParser]
    rate_buckets: dict[str, tuple[str, ...]] = {}

    def dispatch(self, request, *args, **kwargs):
        with answers_kept():  # the view and the services it calls see one answer per flag
            return super().dispatch(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in rate_limit_headers(getattr(request, "rate_window", None)).items():
            response[name] = value
        accepted = required_scope(self, request)
        if accepted:
            response["X-Accepted-OAuth-Scopes"] = accepted
        # Read what authentication stored rather than `request.auth`, which would authenticate (and
        # could raise) for a request that failed before getting that far.
        token = getattr(request, "_auth", None)
        if token is not None:
            response["X-OAuth-Scopes"] = token.scopes
        return response

    @property
    def account(self):
        """The caller's account; None for anonymous callers and users in no account."""
        return account_of(user=self.request.user)

    @property
    def gpu_plans_visible(self) -> bool:
        """Anonymous callers see what an account without the flag sees, unless it is on for everyone."""
        if not hasattr(self, "_gpu_plans_visible"):
            user = self.request.user if self.request.user.is_authenticated else None
            self._gpu_plans_visible = gpu_plans_visible(user=user)
        return self._gpu_plans_visible


class LinodeView(LinodeMixin, APIView):
    pass


class LinodeListView(LinodeMixin, generics.ListAPIView):
    """A paginated, X-Filter-able list. `filter_fields` maps filter keys to database paths."""

    pagination_class = LinodePagination
    filter_backends = [XFilterBackend]
    filter_fields: dict = {}


class LinodeDetailView(LinodeMixin, generics.RetrieveAPIView):
    pass


class NotFoundView(LinodeView):
    """Any path under /v4 that names no endpoint: Linode's 404 body, whatever the method."""

    schema = None  # not an endpoint: left out of the OpenAPI document

    def initial(self, request, *args, **kwargs):
        raise NotFound
