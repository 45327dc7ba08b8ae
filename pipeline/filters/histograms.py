"""Signal histograms as SVG, written directly.

matplotlib spent ~70 ms per figure laying out ticks and text, and ten
figures were the last second and a half of a small filter job, after
everything else had finished. A histogram here is bars, two axes, dashed
thresholds, a title and a legend: SVG states them in a few kilobytes, the
browser draws the text, and it stays sharp at any zoom.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

import numpy as np

WIDTH, HEIGHT = 600, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 30, 34, 46  # margins around the plot area
# matplotlib's default colour cycle, so the histograms keep the colours users know.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


@dataclass
class Series:
    label: str
    counts: np.ndarray
    edges: np.ndarray  # len(counts) + 1 bin edges
    color: str


def _fmt(v: float) -> str:
    return f"{v:g}"


def linear_ticks(lo: float, hi: float, most: int = 7) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) covering [lo, hi], at most `most`."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(most - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Powers of ten in [lo, hi]; with 1, 2 and 5 times them when fewer than three fit."""
    if lo <= 0 or hi <= lo:
        return []
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** d for d in decades for m in mantissas if lo <= m * 10.0 ** d <= hi]
        if len(ticks) >= 3:
            return ticks
    return ticks


def histogram_svg(title: str, series: list[Series], thresholds: list[tuple[float, str]], log: bool,
                  ylabel: str = "documents") -> str:
    """One figure: each series a translucent filled step outline, `thresholds` as dashed verticals
    (value, colour), a log x axis when `log`."""
    xs = [e for s in series for e in (s.edges[0], s.edges[-1])] + [t for t, _ in thresholds
                                                                     if math.isfinite(t) and (t > 0 or not log)]
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if hi <= lo:
        lo, hi = (lo / 2, lo * 2) if log and lo > 0 else (lo - 0.5, hi + 0.5)
    if not log:
        pad = (hi - lo) * 0.03
        lo, hi = lo - pad, hi + pad
    top = max([int(s.counts.max()) for s in series if len(s.counts)] + [1]) * 1.05
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    f = (lambda v: math.log10(v)) if log else (lambda v: v)
    span = f(hi) - f(lo)

    def x(v: float) -> float:
        return LEFT + (f(v) - f(lo)) / span * w

    def y(c: float) -> float:
        return TOP + h - c / top * h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT + w / 2}" y="{TOP - 12}" text-anchor="middle" font-size="13">{escape(title)}</text>']
    for s in series:
        pts = [(x(s.edges[0]), y(0))]
        for c, a, b in zip(s.counts, s.edges[:-1], s.edges[1:]):
            pts += [(x(a), y(c)), (x(b), y(c))]
        pts.append((x(s.edges[-1]), y(0)))
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        out.append(f'<polygon points="{path}" fill="{s.color}" fill-opacity="0.5" stroke="{s.color}"/>')
    for value, color in thresholds:
        if math.isfinite(value) and lo <= value <= hi:
            out.append(f'<line x1="{x(value):.1f}" y1="{TOP}" x2="{x(value):.1f}" y2="{TOP + h}" '
                       f'stroke="{color}" stroke-dasharray="5,3"/>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="black"/>')
    for t in (log_ticks if log else linear_ticks)(lo, hi):
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP + h}" x2="{x(t):.1f}" y2="{TOP + h + 4}" stroke="black"/>'
                   f'<text x="{x(t):.1f}" y="{TOP + h + 16}" text-anchor="middle">{_fmt(t)}</text>')
    for t in linear_ticks(0, top):
        out.append(f'<line x1="{LEFT - 4}" y1="{y(t):.1f}" x2="{LEFT}" y2="{y(t):.1f}" stroke="black"/>'
                   f'<text x="{LEFT - 7}" y="{y(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text transform="translate(16,{TOP + h / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(ylabel)}</text>')
    for i, s in enumerate(series):  # legend, top right
        ly = TOP + 14 + 16 * i
        out.append(f'<rect x="{LEFT + w - 120}" y="{ly - 9}" width="14" height="10" fill="{s.color}" '
                   f'fill-opacity="0.5" stroke="{s.color}"/><text x="{LEFT + w - 100}" y="{ly}">'
                   f'{escape(s.label)}</text>')
    out.append("</svg>")
    return "\n".join(out)
