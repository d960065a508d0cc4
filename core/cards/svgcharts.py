"""Small inline SVG charts for model cards.

A card must open offline, print crisply and run no script, so its plots are plain
SVG drawn from the reference profile (quantile bins, category frequencies) rather
than plotly figures. Every label is escaped: column names and category values come
from training data and may hold anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from core.model.profile import one_bin_per_value

BAR = "#4c6ef5"
OTHER = "#adb5bd"
AXIS = "#868e96"
TEXT = "#343a40"
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"


def fmt_number(x: float | int | None) -> str:
    """A short, readable number: 0.0123, 12.3, 1234, 45.6k, 1.2M."""
    if x is None:
        return "–"
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.3g}M"
    if ax >= 1e4:
        return f"{x / 1e3:.3g}k"
    if x == int(x):
        return f"{x:.0f}"
    return f"{x:.4g}" if ax >= 100 else f"{x:.3g}"


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" '
            f'style="{FONT}"><title>{escape(label)}</title>{"".join(body)}</svg>')


def histogram_svg(edges: Sequence[float], counts: Sequence[int], *, label: str = "",
                  discrete: bool = False, width: int = 240, height: int = 72) -> str:
    """A density histogram of quantile bins (bars as wide as their bins).

    ``discrete`` is for integer data: the last of quantile bins is closed, so it holds one
    more integer than its width says, and drawing it that much wider keeps its height
    honest. Bins of one value each already end one past the last value.
    """
    edges = [float(e) for e in edges]
    counts = [int(c) for c in counts]
    shown_hi = edges[-1] if edges else 0.0
    if discrete and len(edges) > 1 and one_bin_per_value(edges):
        shown_hi = edges[-1] - 1
    elif discrete and len(edges) > 1 and all(e == int(e) for e in edges):
        edges[-1] += 1
    pad_x, pad_top, pad_bottom = 4, 4, 16
    plot_w, plot_h = width - 2 * pad_x, height - pad_top - pad_bottom
    lo, hi = (edges[0], edges[-1]) if edges else (0.0, 0.0)
    body: list[str] = []
    if not counts or len(edges) != len(counts) + 1:
        body.append(f'<text x="{width / 2}" y="{height / 2}" font-size="11" fill="{AXIS}" '
                    f'text-anchor="middle">no distribution</text>')
        return _svg(width, height, label or "no distribution", body)
    span = hi - lo
    if span <= 0:
        # every value equal: one bar over the whole axis
        body.append(f'<rect x="{pad_x}" y="{pad_top}" width="{plot_w}" height="{plot_h}" '
                    f'fill="{BAR}" opacity="0.85"/>')
    else:
        densities = [c / (edges[i + 1] - edges[i]) if edges[i + 1] > edges[i] else 0.0
                     for i, c in enumerate(counts)]
        top = max(densities) or 1.0
        for i, d in enumerate(densities):
            x0 = pad_x + (edges[i] - lo) / span * plot_w
            x1 = pad_x + (edges[i + 1] - lo) / span * plot_w
            h = d / top * plot_h
            body.append(f'<rect x="{x0:.2f}" y="{pad_top + plot_h - h:.2f}" '
                        f'width="{max(x1 - x0 - 0.6, 0.6):.2f}" height="{h:.2f}" fill="{BAR}" '
                        f'opacity="0.85"><title>{escape(fmt_number(edges[i]))} to '
                        f'{escape(fmt_number(min(edges[i + 1], shown_hi)))}: {counts[i]} rows'
                        f'</title></rect>')
    base = pad_top + plot_h
    body.append(f'<line x1="{pad_x}" y1="{base}" x2="{width - pad_x}" y2="{base}" '
                f'stroke="{AXIS}" stroke-width="1"/>')
    body.append(f'<text x="{pad_x}" y="{height - 3}" font-size="10" fill="{TEXT}">'
                f'{escape(fmt_number(lo))}</text>')
    body.append(f'<text x="{width - pad_x}" y="{height - 3}" font-size="10" fill="{TEXT}" '
                f'text-anchor="end">{escape(fmt_number(shown_hi))}</text>')
    return _svg(width, height, label or "distribution", body)


def _truncate(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def bars_svg(frequencies: Mapping[str, int], *, other: int = 0, label: str = "",
             max_bars: int = 6, width: int = 240) -> str:
    """Horizontal bars of the most frequent categories, the rest as one grey bar."""
    items = sorted(((str(k), int(v)) for k, v in frequencies.items()), key=lambda kv: -kv[1])
    rest = other + sum(v for _, v in items[max_bars:])
    n_rest = len(items[max_bars:])
    items = items[:max_bars]
    rows: list[tuple[str, int, str]] = [(k, v, BAR) for k, v in items]
    if rest:
        rows.append((f"other ({n_rest} more)" if n_rest else "other", rest, OTHER))
    row_h, label_w = 14, 92
    height = max(len(rows), 1) * row_h + 4
    total = sum(v for _, v, _ in rows) or 1
    top = max((v for _, v, _ in rows), default=1) or 1
    bar_w = width - label_w - 44
    body: list[str] = []
    if not rows:
        body.append(f'<text x="4" y="12" font-size="11" fill="{AXIS}">no values</text>')
    for i, (name, value, color) in enumerate(rows):
        y = 2 + i * row_h
        w = value / top * bar_w
        share = f"{value / total:.0%}"
        body.append(f'<text x="{label_w - 4}" y="{y + 10}" font-size="10" fill="{TEXT}" '
                    f'text-anchor="end">{escape(_truncate(name, 16))}</text>')
        body.append(f'<rect x="{label_w}" y="{y + 1}" width="{max(w, 0.8):.2f}" '
                    f'height="{row_h - 3}" fill="{color}" opacity="0.85">'
                    f'<title>{escape(name)}: {value} rows ({share})</title></rect>')
        body.append(f'<text x="{label_w + w + 3:.2f}" y="{y + 10}" font-size="10" '
                    f'fill="{TEXT}">{share}</text>')
    return _svg(width, height, label or "category frequencies", body)


def trend_svg(points: Sequence[tuple[str, float]], *, label: str = "", width: int = 240,
              height: int = 56) -> str:
    """A line through a metric's values across versions, oldest on the left."""
    values = [(str(k), float(v)) for k, v in points if v is not None and math.isfinite(v)]
    pad_x, pad_y = 6, 8
    body: list[str] = []
    if len(values) < 2:
        text = "one version" if values else "no values"
        body.append(f'<text x="4" y="{height / 2}" font-size="11" fill="{AXIS}">{text}</text>')
        return _svg(width, height, label or text, body)
    ys = [v for _, v in values]
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    step = (width - 2 * pad_x) / (len(values) - 1)
    coords = [(pad_x + i * step, height - pad_y - (v - lo) / span * (height - 2 * pad_y))
              for i, v in enumerate(ys)]
    path = " ".join(f"{x:.2f},{y:.2f}" for x, y in coords)
    body.append(f'<polyline points="{path}" fill="none" stroke="{BAR}" stroke-width="1.5"/>')
    for (x, y), (version, v) in zip(coords, values, strict=True):
        body.append(f'<circle cx="{x:.2f}" cy="{y:.2f}" r="2.5" fill="{BAR}">'
                    f'<title>{escape(version)}: {escape(fmt_number(v))}</title></circle>')
    return _svg(width, height, label or "trend", body)
