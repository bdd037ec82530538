"""The arithmetic alone: hours round up per piece, each piece capped at its monthly rate, cents half up."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.months import month_end, month_of, month_start, parse_month
from billing.rating import Credit, Piece, billable_hours, cents, piece_price, pieces_of, rate

JAN = datetime(2026, 1, 1, tzinfo=UTC)
HOURLY, MONTHLY = Decimal("1.50"), Decimal("1000.00")


def piece(start: datetime, end: datetime, *, gpu: bool = True, segment_id: int = 1) -> Piece:
    return Piece(segment_id, month_of(start), start, end, HOURLY, MONTHLY, gpu)


def test_linode_example_ten_hours_and_a_minute_is_eleven_hours():
    start = JAN + timedelta(days=3)
    hours = billable_hours(start, start + timedelta(hours=10, minutes=1))
    assert hours == 11
    assert piece_price(hours=hours, hourly=HOURLY, monthly=MONTHLY) == Decimal("16.50")


def test_whole_hours_and_a_second():
    assert billable_hours(JAN, JAN + timedelta(hours=10)) == 10
    assert billable_hours(JAN, JAN + timedelta(seconds=1)) == 1
    assert billable_hours(JAN, JAN) == 0


def test_a_whole_month_is_capped_at_the_monthly_rate():
    january = pieces_of(
        segment_id=1,
        started_at=JAN,
        ended_at=None,
        until=month_end(month_of(JAN)),
        hourly=HOURLY,
        monthly=MONTHLY,
        gpu=True,
    )
    assert [p.hours for p in january] == [744]
    assert piece_price(hours=744, hourly=HOURLY, monthly=MONTHLY) == Decimal("1000.00")


def test_cents_round_half_up_not_to_even():
    # 2 h at $0.0125 is $0.025: half up gives 3 cents where banker's rounding would give 2.
    assert piece_price(hours=2, hourly=Decimal("0.0125"), monthly=Decimal("10")) == Decimal("0.03")
    assert cents(Decimal("0.005")) == Decimal("0.01")
    assert cents(Decimal("0.0049")) == Decimal("0.00")


def test_parse_month_says_what_it_wants():
    assert parse_month("2026-02") == date(2026, 2, 1)
    for bad in ("2026-13", "2026-2", "Feb", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)


moments = st.integers(min_value=0, max_value=100 * 24 * 3600).map(lambda s: JAN + timedelta(seconds=s))
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("50"), places=4)
caps = st.decimals(min_value=Decimal("0"), max_value=Decimal("5000"), places=2)


@given(start=moments, length=st.integers(min_value=1, max_value=80 * 24 * 3600), hourly=prices, monthly=caps)
def test_pieces_cover_the_segment_once_each_month_rounded_and_capped_on_its_own(
    start, length, hourly, monthly
):
    end = start + timedelta(seconds=length)
    pieces = pieces_of(
        segment_id=7,
        started_at=start,
        ended_at=end,
        until=end + timedelta(days=400),
        hourly=hourly,
        monthly=monthly,
        gpu=True,
    )
    # Contiguous, in order, inside one month each, covering exactly [start, end).
    assert pieces[0].start == start and pieces[-1].end == end
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert before.end == after.start == month_start(after.month)
    for p in pieces:
        assert month_start(p.month) <= p.start < p.end <= month_end(p.month)
        exact = (p.end - p.start) / timedelta(hours=1)
        assert exact <= p.hours < exact + 1
    assert len({p.key for p in pieces}) == len(pieces)
    items = rate(pieces)
    for item in items:
        assert item.list_amount == cents(min(item.quantity * hourly, monthly))
        assert Decimal(0) <= item.amount <= monthly
    assert sum(i.amount for i in items) == sum(cents(min(p.hours * hourly, monthly)) for p in pieces)


@given(
    spans=st.lists(
        st.tuples(moments, st.integers(min_value=1, max_value=20 * 24 * 3600), st.booleans()), max_size=6
    ),
    credit=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500"), places=2),
    window_start=moments,
    waived=st.booleans(),
)
def test_a_credit_pays_gpu_hours_inside_its_window_and_never_more_than_it_holds(
    spans, credit, window_start, waived
):
    pieces = []
    for n, (start, length, gpu) in enumerate(spans):
        end = min(start + timedelta(seconds=length), month_end(month_of(start)))
        if end > start:
            pieces.append(piece(start, end, gpu=gpu, segment_id=n))
    window = Credit(1, window_start, window_start + timedelta(days=7), credit)
    items = rate(pieces, waived_reason="employee account: not charged" if waived else "", credits=[window])
    assert sum(i.credit for i in items) <= credit
    for item in items:
        p = item.piece
        assert Decimal(0) <= item.credit <= item.list_amount
        assert item.amount == (Decimal(0) if waived else item.list_amount - item.credit)
        in_window = max(p.start, window.starts_at) < min(p.end, window.expires_at)
        if item.credit:
            assert p.gpu and in_window and not waived and item.promotion_id == 1
        covered = billable_hours(max(p.start, window.starts_at), min(p.end, window.expires_at))
        assert item.credit <= covered * p.hourly
