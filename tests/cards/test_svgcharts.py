"""The card's SVG histograms checked by their geometry against a direct computation."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from core.cards import svgcharts
from core.model.profile import profile_series


def _rects(svg: str) -> np.ndarray:
    """x, y, width, height of every bar."""
    found = re.findall(r'<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"',
                       svg)
    return np.array(found, dtype=float)


def test_histogram_bars_are_densities_on_the_real_edges():
    rng = np.random.default_rng(1)
    prof = profile_series(pd.Series(rng.lognormal(10, 0.6, 2000)), "float")
    edges, counts = np.asarray(prof["edges"]), np.asarray(prof["counts"], dtype=float)
    width, pad = 240, 4
    bars = _rects(svgcharts.histogram_svg(edges, counts, width=width))
    assert len(bars) == len(counts)
    scale = (width - 2 * pad) / (edges[-1] - edges[0])
    assert np.allclose(bars[:, 0], pad + (edges[:-1] - edges[0]) * scale, atol=0.01)
    density = counts / np.diff(edges)
    # heights follow the density (equal-count bins: wide bins are low), not the counts
    assert np.allclose(bars[:, 3] / bars[:, 3].max(), density / density.max(), atol=0.01)
    assert bars[:, 3].max() > 5 * bars[:, 3].min()


def test_whole_values_keep_honest_heights():
    prof = profile_series(pd.Series(np.repeat([1, 2, 3], [10, 20, 10])), "int")
    bars = _rects(svgcharts.histogram_svg(prof["edges"], prof["counts"], discrete=True))
    assert np.allclose(bars[:, 3] / bars[:, 3].max(), [0.5, 1, 0.5], atol=0.01)
    assert np.allclose(np.diff(bars[:, 0]), bars[0, 2] + 0.6, atol=0.02)  # equal widths
