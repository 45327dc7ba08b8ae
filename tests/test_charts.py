"""SVG charts (filter histograms, dedup's rate curve): round ticks, valid SVG in the corner cases a run
can produce."""
from __future__ import annotations

from xml.etree import ElementTree

import numpy as np
import pytest

from crawl2model.core.charts import Line, Series, histogram_svg, line_svg, linear_ticks, log_ticks

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("lo, hi, want", [
    (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0.38, 1.02, [0.4, 0.6, 0.8, 1.0]),
    (0.0, 131.25, [0.0, 50.0, 100.0]),
    (-3.0, 3.0, [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]),
])
def test_linear_ticks_are_round_and_inside(lo, hi, want):
    assert linear_ticks(lo, hi) == want


def test_log_ticks_use_decades_then_mantissas():
    assert log_ticks(3, 1e5) == [10, 100, 1000, 1e4, 1e5]
    assert log_ticks(2, 30) == [2, 5, 10, 20]
    assert log_ticks(0, 10) == [] and log_ticks(5, 5) == []


def test_svg_is_valid_with_empty_constant_and_unplottable_input():
    counts, edges = np.histogram([0.5, 0.5, 0.5], bins=40)  # one value: a zero-width range
    cases = [
        ([], [(float("nan"), "black")], False),
        ([Series("en (3)", counts, edges, "#1f77b4")], [(0.5, "#1f77b4"), (float("inf"), "red")], False),
        ([Series("<zh> & (2)", np.array([1, 1]), np.array([10.0, 100.0, 1000.0]), "#ff7f0e")], [(0.0, "k")], True),
    ]
    for series, thresholds, log in cases:
        root = ElementTree.fromstring(histogram_svg("t <1>", series, thresholds, log))
        assert root.tag == SVG + "svg"
        assert len(root.findall(SVG + "polygon")) == len(series)
        texts = [t.text for t in root.iter(SVG + "text")]
        assert "t <1>" in texts and all(s.label in texts for s in series)
        for line in root.iter(SVG + "line"):
            assert all(np.isfinite(float(line.get(k))) for k in ("x1", "x2", "y1", "y2"))


def test_line_chart_is_valid_with_one_point_and_no_points():
    for xs, ys in (([1, 2, 3], [0.6, 13.8, 10.0]), ([1], [0.0]), ([], [])):
        root = ElementTree.fromstring(line_svg("rate", [Line("1..k", xs, ys, "#1f77b4")],
                                               [(float("nan"), "gray", "nan"), (3.8, "gray", "alone")], "k", "%"))
        assert len(root.findall(SVG + "circle")) == len(xs)
        texts = [t.text for t in root.iter(SVG + "text")]
        assert {"rate", "1..k", "alone", "k", "%"} <= set(texts)
        for line in root.iter(SVG + "line"):
            assert all(np.isfinite(float(line.get(k))) for k in ("x1", "x2", "y1", "y2"))
