"""Calendar months in UTC: the period of an invoice and the unit that caps a segment's price."""

import re
from datetime import UTC, date, datetime

MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def month_of(moment: datetime) -> date:
    """The first day of the UTC month holding `moment` (which must be aware)."""
    moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def month_after(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_before(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def month_start(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def month_end(month: date) -> datetime:
    """The first instant of the next month: months are half-open, [start, end)."""
    return month_start(month_after(month))


def month_label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def parse_month(text: str) -> date:
    match = MONTH_RE.match(text or "")
    if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
        raise ValueError(f"{text!r} is not a month: write it as YYYY-MM, for example 2026-01.")
    return date(int(match[1]), int(match[2]), 1)
