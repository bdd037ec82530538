"""Line charts as server-rendered SVG: no JavaScript, no external assets.

A chart is a pure function of its series, so a test can read the numbers back from the markup: each
series' polyline carries its values in `data-values` and the chart its sample times in `data-times`,
in the same order. The SVG scales to its container (viewBox, width 100%).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

__all__ = ["Series", "legend", "line_chart"]

WIDTH, HEIGHT = 560, 190
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 22


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    css_class: str = ""


def line_chart(
    *,
    title: str,
    times: Sequence[datetime],
    series: Sequence[Series],
    start: datetime,
    end: datetime,
    gap: timedelta = timedelta(hours=7),
) -> SafeString:
    """A line per series over [start, end]; a line breaks where two samples are more than `gap` apart
    (no worker recorded then). The y axis starts at 0 and ends at a round number above the largest value."""
    span = (end - start).total_seconds() or 1.0
    top = _round_up(max((max(s.values, default=0) for s in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(moment: datetime) -> str:
        return f"{LEFT + plot_w * (moment - start).total_seconds() / span:.1f}"

    def y(value: float) -> str:
        return f"{TOP + plot_h * (1 - value / top):.1f}"

    parts = [
        format_html(
            '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}" data-times="{}" '
            'preserveAspectRatio="xMidYMid meet">',
            WIDTH,
            HEIGHT,
            title,
            " ".join(t.strftime("%Y-%m-%dT%H:%M") for t in times),
        ),
        format_html("<title>{}</title>", title),
    ]
    for tick in _y_ticks(top):
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="end">{}</text>',
                LEFT,
                WIDTH - RIGHT,
                y(tick),
                y(tick),
                LEFT - 4,
                y(tick + top * 0.02),
                tick,
            )
        )
    for tick, label in _x_ticks(start, end):
        parts.append(
            format_html(
                '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
                '<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>',
                x(tick),
                x(tick),
                TOP,
                TOP + plot_h,
                x(tick),
                HEIGHT - 6,
                label,
            )
        )
    for line in series:
        path = []
        previous = None
        for moment, value in zip(times, line.values, strict=True):
            move = previous is None or moment - previous > gap
            path.append(f"{'M' if move else 'L'}{x(moment)},{y(value)}")
            previous = moment
        parts.append(
            format_html(
                '<path class="series {}" d="{}" data-series="{}" data-values="{}"><title>{}</title></path>',
                line.css_class,
                " ".join(path),
                line.name,
                " ".join(str(v) for v in line.values),
                f"{line.name}: {line.values[-1]} now" if line.values else line.name,
            )
        )
    if not times:
        parts.append(
            format_html(
                '<text class="empty" x="{}" y="{}" text-anchor="middle">{}</text>',
                WIDTH // 2,
                HEIGHT // 2,
                "no samples in this window yet",
            )
        )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(p) for p in parts))


def legend(series: Sequence[Series]) -> SafeString:
    return mark_safe(
        "".join(
            f'<span class="legend-item"><span class="swatch {escape(s.css_class)}"></span>'
            f"{escape(s.name)}</span>"
            for s in series
        )
    )


def _round_up(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above `value` (at least 4, so small counts get room)."""
    value = max(value, 4)
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def _y_ticks(top: int) -> list[int]:
    return sorted({round(top * i / 4) for i in range(5)})


def _x_ticks(start: datetime, end: datetime) -> list[tuple[datetime, str]]:
    span = end - start
    if span <= timedelta(days=1):
        step, fmt = timedelta(hours=6), "%H:%M"
    elif span <= timedelta(days=7):
        step, fmt = timedelta(days=1), "%m-%d"
    else:
        step, fmt = timedelta(days=7), "%m-%d"
    tick = start.replace(minute=0, second=0, microsecond=0)
    if step >= timedelta(days=1):
        tick = tick.replace(hour=0)
    else:
        tick = tick.replace(hour=tick.hour - tick.hour % 6)
    ticks = []
    while tick <= end:
        if tick >= start:
            ticks.append((tick, tick.strftime(fmt)))
        tick += step
    return ticks
