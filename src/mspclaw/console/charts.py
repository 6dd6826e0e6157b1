"""Charts drawn on the server as inline SVG: bars, stacked bars and a line. No script, no library.

Each chart has a ``<title>`` and a ``<desc>`` (read out by screen readers, shown as the tooltip), labelled axes
with ticks, and every value as text as well as a shape: a ``<title>`` on each bar or point, and the value
written above the bar wherever the bars are wide enough for it. Colours come from ``console.css`` classes
(``s0``, ``s1``…), never from inline styles (the console's CSP forbids them). The output is well-formed XML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from mspclaw.console.pages import BIDI_CONTROLS

WIDTH = 720
"""The default width of a chart's drawing (a full-width card); a chart in half a card draws narrower, so its
text stays as large on the screen."""
HEIGHT = 290
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 30, 76
"""Margins around the plot: room for the y axis' ticks, the value labels and the x axis' labels."""
PLOT_H = HEIGHT - TOP - BOTTOM
MAX_POINTS = 400
"""The most bars or points one chart draws (a 90-day window has 90)."""
MIN_LABEL_W = 16.0
"""Narrower bars than this get their value in the bar's ``<title>`` only."""


@dataclass(frozen=True)
class Series:
    """One named row of values (a stack segment, or the only bars): ``len(values)`` equals the labels'."""

    name: str
    values: Sequence[float]


def _x(value: object) -> str:
    return escape(str(value).translate(BIDI_CONTROLS), quote=True)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") or "0"


def nice_max(value: float) -> float:
    """The top of the y axis: the smallest 1, 2 or 5 times a power of ten at or above ``value`` (1 for 0)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value - 1e-9:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def intervals(top: float) -> int:
    """How many grid intervals the y axis up to ``top`` gets: 4 for a top of 2, 20, 200…, else 5 (round ticks)."""
    leading = top / 10 ** math.floor(math.log10(top))
    return 4 if round(leading) == 2 else 5


def _check(labels: Sequence[str], series: Sequence[Series]) -> None:
    if len(labels) > MAX_POINTS:
        raise ValueError(f"a chart draws at most {MAX_POINTS} bars or points, not {len(labels)}")
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")
        if any(v < 0 or not math.isfinite(v) for v in s.values):
            raise ValueError(f"series {s.name!r} has a negative or non-finite value")


def _frame(chart_id: str, title: str, desc: str, x_label: str, y_label: str, top: float, unit: str,
           labels: Sequence[str], width: int) -> list[str]:
    """The opening tag, title, description, grid lines with the y ticks, axes and axis labels."""
    plot_w = width - LEFT - RIGHT
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{_x(chart_id)}" viewBox="0 0 {width} '
             f'{HEIGHT}" role="img" aria-labelledby="{_x(chart_id)}-title {_x(chart_id)}-desc" '
             f'data-max="{_num(top)}" data-plot-height="{PLOT_H}">',
             f'<title id="{_x(chart_id)}-title">{_x(title)}</title>',
             f'<desc id="{_x(chart_id)}-desc">{_x(desc)}</desc>']
    steps = intervals(top)
    for i in range(steps + 1):
        value = top * i / steps
        y = TOP + PLOT_H - PLOT_H * i / steps
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{_num(y)}" x2="{LEFT + plot_w}" y2="{_num(y)}"/>')
        parts.append(f'<text class="tick" x="{LEFT - 6}" y="{_num(y + 4)}" text-anchor="end">'
                     f"{_x(_num(value) + unit)}</text>")
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + PLOT_H}"/>')
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{TOP + PLOT_H}" x2="{LEFT + plot_w}" y2="{TOP + PLOT_H}"/>')
    parts.append(f'<text class="axis-label" x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">'
                 f"{_x(x_label)}</text>")
    parts.append(f'<text class="axis-label" x="12" y="{TOP + PLOT_H / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 12 {TOP + PLOT_H / 2:.0f})">{_x(y_label)}</text>')
    if not labels:
        parts.append(f'<text class="empty" x="{LEFT + plot_w / 2:.0f}" y="{TOP + PLOT_H / 2:.0f}" '
                     f'text-anchor="middle">No data in this window.</text>')
    return parts


LABEL_GAP = 22.0
"""The least horizontal room between two slanted x labels (a line of text, slanted by 30 degrees)."""


def _x_labels(labels: Sequence[str], centre: list[float], slot: float, max_chars: int = 16) -> list[str]:
    """Every label when they fit (``slot``: the room of one), else every n-th one from the first; longer ones
    shortened."""
    every = max(1, math.ceil(LABEL_GAP / slot))
    parts = []
    for i, (text, x) in enumerate(zip(labels, centre, strict=True)):
        if i % every:
            continue
        short = text if len(text) <= max_chars else text[: max_chars - 1] + "…"
        y = TOP + PLOT_H + 14
        parts.append(f'<text class="x-label" x="{_num(x)}" y="{y}" text-anchor="end" '
                     f'transform="rotate(-30 {_num(x)} {y})">{_x(short)}</text>')
    return parts


def stacked_bars(chart_id: str, title: str, labels: Sequence[str], series: Sequence[Series], *,
                 x_label: str, y_label: str, unit: str = "", top: float | None = None, at_least: float = 5.0,
                 width: int = WIDTH) -> str:
    """One bar per label, the series stacked bottom-up in order (class ``s0``, ``s1``…); with one series,
    plain bars. The y axis runs from 0 to ``top``, by default :func:`nice_max` of the tallest stack or of
    ``at_least`` (5: whole ticks for counts)."""
    _check(labels, series)
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    tallest = max(totals, default=0)
    top = top if top is not None else nice_max(max(tallest, at_least))
    if top <= 0 or tallest > top:
        raise ValueError(f"the y axis' top {top} must be positive and at least the tallest bar ({tallest})")
    slot = (width - LEFT - RIGHT) / max(1, len(labels))
    bar = max(1.0, slot * 0.7)
    desc = "; ".join(f"{label}: " + ", ".join(f"{_num(s.values[i])}{unit} {s.name}" for s in series)
                     for i, label in enumerate(labels))
    parts = _frame(chart_id, title, desc[:4000], x_label, y_label, top, unit, labels, width)
    centres = []
    for i, label in enumerate(labels):
        x = LEFT + slot * i + (slot - bar) / 2
        centres.append(x + bar / 2)
        base: float = TOP + PLOT_H
        parts.append(f'<g class="bar-group" data-label="{_x(label)}">')
        for n, s in enumerate(series):
            value = s.values[i]
            height = PLOT_H * value / top
            base -= height
            parts.append(f'<rect class="bar s{n}" x="{_num(x)}" y="{_num(base)}" width="{_num(bar)}" '
                         f'height="{_num(height)}" data-series="{_x(s.name)}" data-value="{_num(value)}">'
                         f"<title>{_x(label)}: {_x(_num(value) + unit)} {_x(s.name)}</title></rect>")
        if bar >= MIN_LABEL_W and (totals[i] > 0 or len(series) == 1):
            parts.append(f'<text class="value" x="{_num(x + bar / 2)}" y="{_num(base - 4)}" text-anchor="middle">'
                         f"{_x(_num(totals[i]) + unit)}</text>")
        parts.append("</g>")
    parts += _x_labels(labels, centres, slot)
    if len(series) > 1:
        parts.append(_legend(series))
    parts.append("</svg>")
    return "".join(parts)


def bars(chart_id: str, title: str, labels: Sequence[str], values: Sequence[float], *, x_label: str, y_label: str,
         unit: str = "", name: str = "value", top: float | None = None, at_least: float = 5.0,
         width: int = WIDTH) -> str:
    """Plain bars: :func:`stacked_bars` with one series."""
    return stacked_bars(chart_id, title, labels, [Series(name, values)], x_label=x_label, y_label=y_label, unit=unit,
                        top=top, at_least=at_least, width=width)


def line(chart_id: str, title: str, labels: Sequence[str], values: Sequence[float], *, x_label: str, y_label: str,
         unit: str = "", top: float | None = None, name: str = "value", width: int = WIDTH) -> str:
    """A line through one point per label (each point a circle with its value in a ``<title>``); the y axis
    runs from 0 to ``top`` (default: :func:`nice_max` of the largest value)."""
    _check(labels, [Series(name, values)])
    high = top if top is not None else nice_max(max(values, default=0))
    if high <= 0 or any(v > high for v in values):
        raise ValueError(f"the y axis' top {high} must be positive and at least every value")
    slot = (width - LEFT - RIGHT) / max(1, len(labels))
    desc = "; ".join(f"{label}: {_num(v)}{unit}" for label, v in zip(labels, values, strict=True))
    parts = _frame(chart_id, title, desc[:4000], x_label, y_label, high, unit, labels, width)
    points = [(LEFT + slot * i + slot / 2, TOP + PLOT_H - PLOT_H * v / high) for i, v in enumerate(values)]
    if len(points) > 1:
        path = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
        parts.append(f'<polyline class="line s0" points="{path}" fill="none"/>')
    for (x, y), label, value in zip(points, labels, values, strict=True):
        parts.append(f'<circle class="point s0" cx="{_num(x)}" cy="{_num(y)}" r="3" data-value="{_num(value)}">'
                     f"<title>{_x(label)}: {_x(_num(value) + unit)}</title></circle>")
        if slot >= 2 * MIN_LABEL_W:
            parts.append(f'<text class="value" x="{_num(x)}" y="{_num(y - 7)}" text-anchor="middle">'
                         f"{_x(_num(value) + unit)}</text>")
    parts += _x_labels(labels, [x for x, _ in points], slot)
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: Sequence[Series]) -> str:
    items = []
    x = LEFT + 8
    for n, s in enumerate(series):
        items.append(f'<rect class="bar s{n}" x="{x}" y="4" width="10" height="10"/>'
                     f'<text class="legend" x="{x + 14}" y="13">{_x(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    return f'<g class="legend">{"".join(items)}</g>'
