import re
from math import ceil

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

PAGE_SIZE_MIN, PAGE_SIZE_MAX, PAGE_SIZE_DEFAULT = 25, 500, 100


# ASCII digits only: int() also reads "１" (fullwidth), "+1", " 1" and "1_0", which docs/api.md refuses.
DIGITS = re.compile(r"[0-9]{1,10}")


def _positive_int(request, name: str, default: int, low: int, high: int, reason: str) -> int:
    """The parameter as an integer in [low, high]; absent means `default`, and present but empty (`?page=`)
    is a 400 like any other value that is not a number."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int(raw) if DIGITS.fullmatch(raw) else None
    if value is None or not low <= value <= high:
        raise ValidationError({name: [reason]})
    return value


class LinodePagination(BasePagination):
    """Linode's envelope: {data, page, pages, results}; page_size 25..500, anything else is a 400.

    A page past the last one answers an empty `data` rather than an error, so a client that walks
    pages while rows are deleted does not fail on its last request.
    """

    def paginate_queryset(self, queryset, request, view=None):
        self.page = _positive_int(request, "page", 1, 1, 2**31 - 1, "page must be a positive integer")
        self.page_size = _positive_int(
            request,
            "page_size",
            PAGE_SIZE_DEFAULT,
            PAGE_SIZE_MIN,
            PAGE_SIZE_MAX,
            f"page_size must be between {PAGE_SIZE_MIN} and {PAGE_SIZE_MAX}",
        )
        self.results = len(queryset) if isinstance(queryset, list) else queryset.count()
        self.pages = max(1, ceil(self.results / self.page_size))
        start = (self.page - 1) * self.page_size
        if start >= self.results:
            return []
        return list(queryset[start : start + self.page_size])

    def get_paginated_response(self, data):
        return Response({"data": data, "page": self.page, "pages": self.pages, "results": self.results})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["data", "page", "pages", "results"],
            "properties": {
                "data": schema,
                "page": {"type": "integer", "minimum": 1},
                "pages": {"type": "integer", "minimum": 1},
                "results": {"type": "integer", "minimum": 0},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "page",
                "in": "query",
                "required": False,
                "description": "The page to return, from 1.",
                "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1, "default": 1},
            },
            {
                "name": "page_size",
                "in": "query",
                "required": False,
                "description": f"Rows a page, {PAGE_SIZE_MIN} to {PAGE_SIZE_MAX}.",
                "schema": {
                    "type": "integer",
                    "minimum": PAGE_SIZE_MIN,
                    "maximum": PAGE_SIZE_MAX,
                    "default": PAGE_SIZE_DEFAULT,
                },
            },
        ]
