from datetime import UTC

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"


@extend_schema_field({"type": "string", "pattern": TIMESTAMP_PATTERN, "example": "2026-01-31T23:59:59"})
class Timestamp(serializers.DateTimeField):
    """Linode's timestamps: UTC, to the second, with no zone suffix, so not RFC 3339 `date-time`."""

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M:%S", default_timezone=UTC, **kwargs)
