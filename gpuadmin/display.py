"""Small formatters shared by the admin lists (what a column shows, not what it means)."""

from datetime import UTC, datetime


def minute(value: datetime | None) -> str:
    """A time to the minute, in UTC, as a list column shows it: 2026-12-01 11:11 ("-" for none)."""
    if value is None:
        return "-"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M}"
