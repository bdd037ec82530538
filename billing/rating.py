"""The arithmetic of a bill, with no database: pieces, hours, caps, cents and credits.

- A *piece* is one usage segment inside one UTC calendar month. It is billed as one invoice item.
- Its quantity is its length rounded up to a whole hour (10 h 1 min is 11 h), per piece: a segment
  that crosses a month boundary is two pieces, each rounded up on its own, as Linode does.
- Its price is min(hours x hourly, monthly) with the rates the segment snapshotted, then rounded to
  the cent, half up. Rounding happens once, at the item, so the invoice total (the sum of rounded
  items) never disagrees with its items by a cent.
- An account that is not charged (an employee team) gets the item at zero, with the reason on it.
- A credit (the GPU trial) covers GPU usage inside its validity window only: the piece's hours that
  fall in the window, rounded up, at the hourly rate, never more than the item's price nor more than
  what is left of the credit. Usage after the window is not covered, so whatever is left expires.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from billing.months import month_after, month_end, month_of, month_start

HOUR = timedelta(hours=1)
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def billable_hours(start: datetime, end: datetime) -> int:
    """Whole hours from start to end, any started hour counting as one."""
    if end <= start:
        return 0
    return -(-(end - start) // HOUR)


def piece_price(*, hours: int, hourly: Decimal, monthly: Decimal) -> Decimal:
    return cents(min(hours * hourly, monthly))


@dataclass(frozen=True)
class Piece:
    segment_id: int
    month: date
    start: datetime
    end: datetime
    hourly: Decimal
    monthly: Decimal
    gpu: bool

    @property
    def hours(self) -> int:
        return billable_hours(self.start, self.end)

    @property
    def key(self) -> tuple[int, date]:
        return (self.segment_id, self.month)


def pieces_of(
    *,
    segment_id: int,
    started_at: datetime,
    ended_at: datetime | None,
    until: datetime,
    hourly: Decimal,
    monthly: Decimal,
    gpu: bool,
) -> list[Piece]:
    """The segment cut at month boundaries, up to `until` for the part not over yet."""
    end = until if ended_at is None else min(ended_at, until)
    pieces = []
    month = month_of(started_at)
    while month_start(month) < end:
        start, stop = max(started_at, month_start(month)), min(end, month_end(month))
        if stop > start:
            pieces.append(Piece(segment_id, month, start, stop, hourly, monthly, gpu))
        month = month_after(month)
    return pieces


def piece_count(started_at: datetime, ended_at: datetime) -> int:
    """How many items a closed segment makes: one per month it touches for any time at all."""
    return len(
        pieces_of(
            segment_id=0,
            started_at=started_at,
            ended_at=ended_at,
            until=ended_at,
            hourly=ZERO,
            monthly=ZERO,
            gpu=False,
        )
    )


def tax_of(subtotal: Decimal, percent: Decimal) -> Decimal:
    """Tax on an invoice's subtotal (after credits and waivers), rounded half up to the cent, once:
    $0.50 at 1 % is $0.005, so $0.01; $0.49 at 1 % is $0.0049, so $0.00."""
    return cents(subtotal * percent / 100)


def tax_shares(tax: Decimal, amounts: list[Decimal]) -> list[Decimal]:
    """The invoice's tax shared over its items in proportion to their amounts, whole cents, adding up
    to the tax exactly: each item gets the cents its share rounds down to, and the cents left over go
    to the items with the largest remainders (the earlier item first on a tie)."""
    units = int(tax / CENT)
    weights = [int(amount / CENT) for amount in amounts]
    whole = sum(weights)
    if not whole or not units:
        return [ZERO for _ in amounts]
    shares = [units * weight // whole for weight in weights]
    left = units - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(units * weights[i] % whole), i))
    for position in by_remainder[:left]:
        shares[position] += 1
    return [Decimal(share) * CENT for share in shares]


@dataclass(frozen=True)
class Credit:
    promotion_id: int
    starts_at: datetime
    expires_at: datetime
    remaining: Decimal
    gpu_only: bool = True


@dataclass(frozen=True)
class RatedItem:
    piece: Piece
    quantity: int
    list_amount: Decimal
    credit: Decimal
    promotion_id: int | None
    waived_reason: str

    @property
    def amount(self) -> Decimal:
        return ZERO if self.waived_reason else self.list_amount - self.credit


def credit_cover(*, piece: Piece, credit: Credit, price: Decimal) -> Decimal:
    """What a credit may pay of a piece: its hours inside the credit's window, at most the price."""
    if credit.gpu_only and not piece.gpu:
        return ZERO
    covered = billable_hours(max(piece.start, credit.starts_at), min(piece.end, credit.expires_at))
    return min(cents(covered * piece.hourly), price)


def rate(
    pieces: Iterable[Piece], *, waived_reason: str = "", credits: Iterable[Credit] = ()
) -> list[RatedItem]:
    """Price pieces in time order. Each item draws on the first credit (in the order given) that
    covers it; a waived item draws on none, so an employee's trial is never spent."""
    credits = list(credits)
    remaining = {credit.promotion_id: credit.remaining for credit in credits}
    rated = []
    for piece in sorted(pieces, key=lambda p: (p.start, p.segment_id)):
        price = piece_price(hours=piece.hours, hourly=piece.hourly, monthly=piece.monthly)
        applied, promotion_id = ZERO, None
        if not waived_reason:
            for credit in credits:
                cover = min(
                    credit_cover(piece=piece, credit=credit, price=price), remaining[credit.promotion_id]
                )
                if cover > 0:
                    applied, promotion_id = cover, credit.promotion_id
                    remaining[credit.promotion_id] -= cover
                    break
        rated.append(RatedItem(piece, piece.hours, price, applied, promotion_id, waived_reason))
    return rated
