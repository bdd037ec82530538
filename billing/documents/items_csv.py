"""A month's invoice items as CSV rows for finance: one header, then one line per item, streamed."""

import csv
from collections.abc import Iterator
from datetime import date, datetime

from billing import selectors


class _Line:
    """csv.writer writes into this and hands the line back, so rows can be streamed one at a time."""

    def write(self, text: str) -> str:
        return text


def _cell(value) -> object:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m")
    return value


def month_items_csv(*, month: date) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(selectors.MONTH_ITEM_COLUMNS)
    for row in selectors.month_items(month=month):
        yield writer.writerow([_cell(value) for value in row])
