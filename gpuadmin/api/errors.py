"""The one place where exceptions become Linode's error body: {"errors": [{"reason", "field"}]}.

DRF calls `exception_handler` for anything raised in an API view; Django calls the `handler*` views
for what happens outside one (an unknown URL under /v4 is caught by a catch-all view instead), and
gpuadmin.api.middleware answers `InputRefused` for what it refuses before any view runs. Every 4xx and
5xx under /v4 is JSON with a `reason`; nothing there ever renders Django's HTML error page.

A refused input (too large, too deep, a control character, a number that is not finite) is the
client's mistake, not the server's: it is logged as one warning line, never with a traceback.
"""

import logging
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response

from gpuadmin.api.authentication import ACCOUNT_SUSPENDED
from provisioning.exceptions import (
    AccountLimitReached,
    AccountSuspended,
    InstanceBusy,
    InvalidRequest,
    LabelTaken,
    NoCapacity,
    PlanNotFound,
    ProvisioningDisabled,
    ProvisioningError,
    RegionNotValid,
)

logger = logging.getLogger(__name__)

API_PREFIXES = ("/v4/", "/v4beta/")
NOT_FOUND = "Not found"
SERVER_ERROR = "An unexpected error occurred; it has been logged. Please try again."
NO_CAPACITY = "The Linode plan you chose is not currently available in the selected region."
DISABLED = "Provisioning is temporarily disabled; please try again later."

# Linode's own sentences for the errors clients recognise, whatever the service's wording.
FIXED_REASONS = {
    PlanNotFound: "A valid plan type by that ID was not found",
    RegionNotValid: "region is not valid",
    LabelTaken: "Label must be unique among your linodes",
    InstanceBusy: "Linode busy.",
}


class InputRefused(Exception):
    """A request refused for its shape before any business rule looks at it. `status` is a 4xx."""

    def __init__(self, reason: str, *, field: str | None = None, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.status = status


def body_too_large(limit: int) -> InputRefused:
    return InputRefused(
        f"The request body is larger than {limit} bytes.", status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    )


def log_refusal(request, exc: InputRefused, response: HttpResponse) -> HttpResponse:
    """One warning line naming the request and the reason; Django's own "Bad Request" line is skipped.

    The path is logged escaped: a refused path may hold the very control characters it was refused for.
    """
    path = getattr(request, "path", "?")
    logger.warning(
        "refused %s %s: %s %s", getattr(request, "method", "?"), ascii(path[:200]), exc.status, exc.reason
    )
    response._has_been_logged = True  # read by django.utils.log.log_response
    return response


def refusal_response(request, exc: InputRefused) -> JsonResponse:
    """What the middleware answers for a request it refuses before any view runs."""
    return log_refusal(request, exc, JsonResponse(body(error(exc.reason, exc.field)), status=exc.status))


def error(reason: str, field: str | None = None) -> dict:
    return {"reason": reason, "field": field} if field else {"reason": reason}


def body(*errors: dict) -> dict:
    return {"errors": list(errors)}


def provisioning_error(exc: ProvisioningError) -> tuple[int, list[dict], dict]:
    for kind, reason in FIXED_REASONS.items():
        if isinstance(exc, kind):
            return status.HTTP_400_BAD_REQUEST, [error(reason, exc.field)], {}
    if isinstance(exc, InvalidRequest):
        return status.HTTP_400_BAD_REQUEST, [error(exc.message, exc.field)], {}
    if isinstance(exc, AccountLimitReached):
        return status.HTTP_403_FORBIDDEN, [error(exc.message)], {}
    if isinstance(exc, AccountSuspended):
        return status.HTTP_403_FORBIDDEN, [error(ACCOUNT_SUSPENDED)], {}
    if isinstance(exc, NoCapacity):
        return status.HTTP_403_FORBIDDEN, [error(f"{NO_CAPACITY} {exc.detail}".strip(), "region")], {}
    if isinstance(exc, ProvisioningDisabled):
        # 503 with Retry-After: the request was fine, the service is paused; clients retry 503s.
        return status.HTTP_503_SERVICE_UNAVAILABLE, [error(exc.message or DISABLED)], {"Retry-After": "60"}
    return status.HTTP_400_BAD_REQUEST, [error(exc.message, exc.field)], {}


def validation_errors(detail, field: str | None = None) -> list[dict]:
    """Flattens DRF's nested detail into one entry per message; nested keys become dotted fields."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            name = field if key == "non_field_errors" else (f"{field}.{key}" if field else str(key))
            found.extend(validation_errors(value, name))
        return found
    if isinstance(detail, list):
        found = []
        for item in detail:
            found.extend(validation_errors(item, field))
        return found
    return [error(str(detail), field)]


def exception_handler(exc, context):
    headers = {}
    request = context.get("request")
    if isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, read by the parser
        exc = body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    elif isinstance(exc, SuspiciousOperation):
        exc = InputRefused("The request is malformed.")
    if isinstance(exc, InputRefused):
        response = Response(body(error(exc.reason, exc.field)), status=exc.status)
        return log_refusal(request, exc, response)
    if isinstance(exc, ProvisioningError):
        code, errors, headers = provisioning_error(exc)
    elif isinstance(exc, Http404 | exceptions.NotFound):
        code, errors = status.HTTP_404_NOT_FOUND, [error(NOT_FOUND)]
    elif isinstance(exc, DjangoPermissionDenied):
        code, errors = status.HTTP_403_FORBIDDEN, [error(exceptions.PermissionDenied.default_detail)]
    elif isinstance(exc, exceptions.ValidationError):
        code, errors = status.HTTP_400_BAD_REQUEST, validation_errors(exc.detail)
    elif isinstance(exc, exceptions.APIException):
        code, errors = exc.status_code, validation_errors(exc.detail)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    else:
        logger.exception("API error on %s %s", getattr(request, "method", "?"), getattr(request, "path", "?"))
        code, errors = status.HTTP_500_INTERNAL_SERVER_ERROR, [error(SERVER_ERROR)]
    return Response(body(*errors), status=code, headers=headers)


def is_api_request(request) -> bool:
    return request.path.startswith(API_PREFIXES) or request.path in ("/v4", "/v4beta")


def handler400(request, exception=None):
    if is_api_request(request):
        if isinstance(exception, RequestDataTooBig):
            return refusal_response(request, body_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
        return JsonResponse(body(error("Bad request")), status=400)
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if is_api_request(request):
        return JsonResponse(body(error(exceptions.PermissionDenied.default_detail)), status=403)
    return defaults.permission_denied(request, exception)


def handler404(request, exception=None):
    if is_api_request(request):
        return JsonResponse(body(error(NOT_FOUND)), status=404)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if is_api_request(request):
        return JsonResponse(body(error(SERVER_ERROR)), status=500)
    return defaults.server_error(request)
