"""The report's charts: inline SVG built here (no script, nothing loaded from the network).

The geometry is computed in floats; every figure a chart prints comes from the Decimals, formatted
by `Fmt`."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

from tasks.report.format import Fmt

#: Bucket colours, from not yet due (green) to the oldest (dark red); unapplied credit is grey.
BUCKET_COLOURS = ["#4c9f70", "#c9d66b", "#f2c14e", "#f08a4b", "#d9534f", "#8e2a2a", "#5c1a1a", "#3d0f0f"]
CREDIT_COLOUR = "#9aa5b1"
ZERO = Decimal("0")


def _e(text: Any) -> str:
    return str(escape(str(text)))


def svg_sparkline(
    points: list[tuple[date, Decimal]], width: int = 220, height: int = 44, colour: str = "#2b6cb0"
) -> Markup:
    """A line of the metric over the run dates (x spaced by date), its last point marked."""
    if not points:
        return Markup("")
    xs = [p[0].toordinal() for p in points]
    ys = [float(p[1]) for p in points]  # geometry only: the figures shown come from the Decimals
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    pad = 4

    def sx(x: int) -> float:
        return pad + (x - x0) / ((x1 - x0) or 1) * (width - 2 * pad)

    def sy(y: float) -> float:
        return height - pad - (y - y0) / ((y1 - y0) or 1) * (height - 2 * pad)

    coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys))
    lx, ly = sx(xs[-1]), sy(ys[-1])
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{coords}"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="3" fill="{colour}"/></svg>'
    )


def svg_stacked_columns(
    columns: list[tuple[str, list[Decimal]]],
    series: list[tuple[str, str]],
    fmt: Fmt,
    width: int = 720,
    height: int = 260,
    currency: str | None = None,
) -> Markup:
    """Stacked columns (one per date), one segment per bucket; series = [(label, colour)]."""
    if not columns:
        return Markup("")
    left, right, top, bottom = 64, 12, 10, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum((v for v in vals if v > 0), ZERO) for _, vals in columns]
    highest = max(totals) or Decimal(1)
    peak = float(highest)  # geometry; the axis labels are fractions of the Decimal
    slot = plot_w / len(columns)
    bar_w = max(4.0, min(48.0, slot * 0.7))
    parts = [
        f'<svg class="chart" width="{width}" height="{height + 22}" viewBox="0 0 {width} {height + 22}" '
        f'role="img" xmlns="http://www.w3.org/2000/svg" font-family="Helvetica, Arial, sans-serif" font-size="10">'
    ]
    for i in range(5):
        v = highest * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 3:.1f}" text-anchor="end" fill="#4a5568">{_e(fmt.compact(v, currency))}</text>'
        )
    label_every = max(1, len(columns) // 12)
    for i, (label, vals) in enumerate(columns):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for (name, colour), v in zip(series, vals):
            if v <= 0:
                continue
            h = float(v) / peak * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>{_e(label)} — {_e(name)} — {_e(fmt.money(v, currency) if currency else fmt.num(v, 2))}</title></rect>"
            )
        if i % label_every == 0 or i == len(columns) - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" fill="#4a5568">{_e(label)}</text>'
            )
    parts += _svg_legend(series, left, height + 6)
    parts.append("</svg>")
    return Markup("".join(parts))


def _svg_legend(items, x: float, y: float) -> list[str]:
    """A chart legend: a coloured square and its name for each (name, colour), left to right."""
    parts = []
    for name, colour in items:
        parts.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{y + 9}" fill="#1a202c">{_e(name)}</text>')
        x += 14 + 7 * len(name) + 18
    return parts


def svg_funnel(rows: list[tuple[str, int, str]], width: int = 720, row_h: int = 26) -> Markup:
    """The ladder as a funnel: one centred bar per stage, its width the number of debtors there."""
    if not rows:
        return Markup("")
    peak = max(n for _, n, _ in rows) or 1
    label_w, text_w = 150, 170
    bar_room = width - label_w - text_w
    height = row_h * len(rows) + 4
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="Helvetica, Arial, sans-serif" font-size="11">'
    ]
    for i, (label, n, text) in enumerate(rows):
        y = 2 + i * row_h
        w = max(2.0, bar_room * n / peak) if n else 0
        x = label_w + (bar_room - w) / 2
        shade = 0.35 + 0.65 * i / max(1, len(rows) - 1)
        colour = f"rgb({int(43 + 170 * shade)},{int(108 - 60 * shade)},{int(176 - 120 * shade)})"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end" fill="#1a202c">{_e(label)}</text>'
        )
        if w:
            parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" rx="3" fill="{colour}"/>')
        parts.append(f'<text x="{label_w + bar_room + 8}" y="{y + row_h / 2 + 4:.1f}" fill="#1a202c">{_e(text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def svg_hbars(
    rows: list[tuple[str, list[tuple[Decimal | None, str]]]],
    legend: list[tuple[str, str]],
    fmt: Fmt,
    width: int = 720,
    row_h: int = 22,
    reference: list[tuple[str, float]] | None = None,
) -> Markup:
    """Horizontal bars of percentages (0–100): per row, one bar per series [(value, colour)]."""
    if not rows:
        return Markup("")
    label_w, value_w = 150, 70
    room = width - label_w - value_w
    n_series = max(len(vals) for _, vals in rows)
    group_h = row_h * n_series + 8
    height = group_h * len(rows) + 30
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="Helvetica, Arial, sans-serif" font-size="11">'
    ]
    for pct in (0, 25, 50, 75, 100):
        x = label_w + room * pct / 100
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 26}" stroke="#e2e8f0"/>')
        tick = fmt.pct(pct, 0)
        parts.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle" fill="#4a5568">{tick}</text>')
    for i, (label, vals) in enumerate(rows):
        y = 4 + i * group_h
        parts.append(
            f'<text x="{label_w - 8}" y="{y + group_h / 2:.1f}" text-anchor="end" fill="#1a202c">{_e(label)}</text>'
        )
        for j, (value, colour) in enumerate(vals):
            by = y + j * row_h
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{by + row_h - 8}" fill="#718096">—</text>')
                continue
            w = room * min(max(float(value), 0.0), 100.0) / 100
            parts.append(f'<rect x="{label_w}" y="{by + 2}" width="{w:.1f}" height="{row_h - 6}" fill="{colour}"/>')
            parts.append(
                f'<text x="{label_w + w + 4:.1f}" y="{by + row_h - 8}" fill="#1a202c">{_e(fmt.pct(value))}</text>'
            )
    for label, pct in reference or []:
        x = label_w + room * pct / 100
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 26}" stroke="#1a202c" stroke-dasharray="4 3"/>'
        )
        parts.append(f'<text x="{x + 3:.1f}" y="10" fill="#1a202c">{_e(label)}</text>')
    parts += _svg_legend(legend, label_w, height - 10)
    parts.append("</svg>")
    return Markup("".join(parts))
