"""Charts as SVG, written directly: the filter's signal histograms, dedup's removal-rate curve.

matplotlib spent ~70 ms per figure laying out ticks and text (and ~0.6 s to
import): ten filter histograms were the last second and a half of a small
filter job, and dedup's one curve its last second, after everything else had
finished. A chart here is bars or lines, two axes, dashed markers, a title and
a legend: SVG states them in a few kilobytes, the browser draws the text, and
it stays sharp at any zoom.
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


@dataclass
class Line:
    label: str
    xs: list[float]
    ys: list[float]
    color: str


class _Frame:
    """The plot area and its value -> pixel maps (x on a log scale when `log`)."""

    def __init__(self, lo: float, hi: float, top: float, log: bool):
        self.lo, self.hi, self.top, self.log = lo, hi, top, log
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        self.span = self._f(hi) - self._f(lo)

    def _f(self, v: float) -> float:
        return math.log10(v) if self.log else v

    def x(self, v: float) -> float:
        return LEFT + (self._f(v) - self._f(self.lo)) / self.span * self.w

    def y(self, c: float) -> float:
        return TOP + self.h - c / self.top * self.h


def _svg(title: str, frame: _Frame, body: list[str], xlabel: str, ylabel: str,
         legend: list[tuple[str, str, str]]) -> str:
    """The figure around `body`: title, the axes' box, ticks and labels, and a legend of
    (label, colour, "box", "line" or "dashed") entries at the top right."""
    w, h, x, y = frame.w, frame.h, frame.x, frame.y
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{LEFT + w / 2}" y="{TOP - 12}" text-anchor="middle" font-size="13">{escape(title)}</text>',
           *body,
           f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="black"/>']
    for t in (log_ticks if frame.log else linear_ticks)(frame.lo, frame.hi):
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP + h}" x2="{x(t):.1f}" y2="{TOP + h + 4}" stroke="black"/>'
                   f'<text x="{x(t):.1f}" y="{TOP + h + 16}" text-anchor="middle">{_fmt(t)}</text>')
    for t in linear_ticks(0, frame.top):
        out.append(f'<line x1="{LEFT - 4}" y1="{y(t):.1f}" x2="{LEFT}" y2="{y(t):.1f}" stroke="black"/>'
                   f'<text x="{LEFT - 7}" y="{y(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text transform="translate(16,{TOP + h / 2}) rotate(-90)" text-anchor="middle">'
               f'{escape(ylabel)}</text>')
    if xlabel:
        out.append(f'<text x="{LEFT + w / 2}" y="{HEIGHT - 8}" text-anchor="middle">{escape(xlabel)}</text>')
    for i, (label, color, kind) in enumerate(legend):
        ly = TOP + 14 + 16 * i
        mark = (f'<rect x="{LEFT + w - 120}" y="{ly - 9}" width="14" height="10" fill="{color}" '
                f'fill-opacity="0.5" stroke="{color}"/>' if kind == "box" else
                f'<line x1="{LEFT + w - 120}" y1="{ly - 4}" x2="{LEFT + w - 106}" y2="{ly - 4}" stroke="{color}" '
                + ('stroke-dasharray="5,3"/>' if kind == "dashed" else 'stroke-width="2"/>'))
        out.append(f'{mark}<text x="{LEFT + w - 100}" y="{ly}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


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
    frame = _Frame(lo, hi, max([int(s.counts.max()) for s in series if len(s.counts)] + [1]) * 1.05, log)
    x, y = frame.x, frame.y
    body = []
    for s in series:
        pts = [(x(s.edges[0]), y(0))]
        for c, a, b in zip(s.counts, s.edges[:-1], s.edges[1:]):
            pts += [(x(a), y(c)), (x(b), y(c))]
        pts.append((x(s.edges[-1]), y(0)))
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        body.append(f'<polygon points="{path}" fill="{s.color}" fill-opacity="0.5" stroke="{s.color}"/>')
    for value, color in thresholds:
        if math.isfinite(value) and lo <= value <= hi:
            body.append(f'<line x1="{x(value):.1f}" y1="{TOP}" x2="{x(value):.1f}" y2="{TOP + frame.h}" '
                        f'stroke="{color}" stroke-dasharray="5,3"/>')
    return _svg(title, frame, body, "", ylabel, [(s.label, s.color, "box") for s in series])


def line_svg(title: str, lines: list[Line], levels: list[tuple[float, str, str]], xlabel: str,
             ylabel: str) -> str:
    """Lines with a dot at each point, and `levels` as dashed horizontals (value, colour, label);
    the y axis starts at 0."""
    xs = [v for ln in lines for v in ln.xs if math.isfinite(v)]
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.03
    ys = [v for ln in lines for v in ln.ys if math.isfinite(v)] + [v for v, _, _ in levels if math.isfinite(v)]
    frame = _Frame(lo - pad, hi + pad, (max(ys + [0.0]) or 1.0) * 1.1, False)
    x, y = frame.x, frame.y
    body = []
    for ln in lines:
        pts = [(x(a), y(b)) for a, b in zip(ln.xs, ln.ys) if math.isfinite(a) and math.isfinite(b)]
        body.append(f'<polyline points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in pts)}" fill="none" '
                    f'stroke="{ln.color}" stroke-width="2"/>')
        body += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{ln.color}"/>' for px, py in pts]
    for value, color, _ in levels:
        if math.isfinite(value):
            body.append(f'<line x1="{LEFT}" y1="{y(value):.1f}" x2="{LEFT + frame.w}" y2="{y(value):.1f}" '
                        f'stroke="{color}" stroke-dasharray="5,3"/>')
    legend = [(ln.label, ln.color, "line") for ln in lines] + [(label, color, "dashed") for _, color, label in levels]
    return _svg(title, frame, body, xlabel, ylabel, legend)
