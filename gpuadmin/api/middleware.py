"""Refuses, before any view or database query, what no endpoint under /v4 can mean.

It covers every path under /v4 and /v4beta, endpoints or not (the catch-all 404 and the schema
included), and answers through gpuadmin.api.errors: Linode's error body and one warning line.

- a URL longer than MAX_URL_LENGTH: 414;
- a control character in the path: 404, as for any id that cannot exist (the database is never asked);
- a control character in a query parameter: 400 naming the parameter;
- a Content-Length over GPUADMIN_API_MAX_BODY_BYTES: 413, before the body is read.

Bodies and X-Filter are JSON and are checked where they are parsed (gpuadmin.api.parsers and
gpuadmin.api.filtering), by the same rules (gpuadmin.api.inputs).
"""

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse

from gpuadmin.api.errors import NOT_FOUND, InputRefused, body_too_large, is_api_request, refusal_response
from gpuadmin.api.inputs import control_character_reason
from gpuadmin.api.limits import MAX_URL_LENGTH


def refusal(request: HttpRequest) -> InputRefused | None:
    query = request.META.get("QUERY_STRING", "")
    if len(request.path) + len(query) + 1 > MAX_URL_LENGTH:
        return InputRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.", status=414)
    if control_character_reason(request.path, "The path"):
        return InputRefused(NOT_FOUND, status=404)
    try:
        parameters = request.GET.lists()
    except TooManyFieldsSent:
        return InputRefused("The query string has too many parameters.")
    for name, values in parameters:
        field = name if control_character_reason(name, "") is None else None
        for text in (name, *values):
            reason = control_character_reason(text, f"The query parameter {ascii(name)}")
            if reason:
                return InputRefused(reason, field=field)
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return InputRefused("Content-Length is not a number.")
    if length > settings.GPUADMIN_API_MAX_BODY_BYTES:
        return body_too_large(settings.GPUADMIN_API_MAX_BODY_BYTES)
    return None


class ApiInputGuard:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api_request(request):
            refused = refusal(request)
            if refused is not None:
                return refusal_response(request, refused)
        return self.get_response(request)
