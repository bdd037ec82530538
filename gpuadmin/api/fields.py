from datetime import UTC

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"


@extend_schema_field({"type": "string", "pattern": TIMESTAMP_PATTERN, "example": "2026-01-31T23:59:59"})
class Timestamp(serializers.DateTimeField):
    """Linode's timestamps: UTC, to the second, with no zone suffix, so not RFC 3339 `date-time`."""

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M:%S", default_timezone=UTC, **kwargs)


def json_kind(value) -> str:
    """What a JSON value is, in the words of a reason ("a number", "a list")."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "a string"


# Request fields take what Linode's API takes and nothing it would refuse: DRF's own fields coerce
# (1.5 becomes the label "1.5", 1 and "yes" become true, "7" becomes 7), which would let a client's bug
# through as data. Each refusal is a 400 naming the field, like every other validation error.


class Text(serializers.CharField):
    """A JSON string, never a number or boolean read as one.

    `schema` adds to what the OpenAPI document says of the field (minLength, pattern) when the rule is
    the service's (which words the refusal itself) rather than the serializer's: the document tells
    the truth without two places judging the same value. Request strings also get a pattern that
    excludes the control characters gpuadmin.api.inputs refuses everywhere.
    """

    default_error_messages = {"not_text": "Must be a string, not {kind}."}

    def __init__(self, *, schema: dict | None = None, **kwargs):
        self.schema_extra = schema or {}
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text", kind=json_kind(data))
        return super().to_internal_value(data)


class Flag(serializers.BooleanField):
    """JSON true or false, never 1, 0 or a string."""

    default_error_messages = {"not_flag": "Must be true or false, not {kind}."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("not_flag", kind=json_kind(data))
        return data


class Whole(serializers.IntegerField):
    """A JSON integer, never a boolean, a string of digits or a number with a fraction."""

    default_error_messages = {"not_whole": "Must be an integer, not {kind}."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_whole", kind=json_kind(data))
        return super().to_internal_value(data)
