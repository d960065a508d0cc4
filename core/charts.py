"""Plotly figures used by the workbench pages, model cards and monitoring exports.

Every function returns a ``plotly.graph_objects.Figure`` built from plain data
(profile dicts, pandas frames of metrics), so figures are testable by their traces
and data rather than by pixels, and the same figure serves a page, an HTML card or
a Quarto chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

REFERENCE_COLOR = "#636EFA"
CURRENT_COLOR = "#EF553B"
STATUS_COLORS = {"ok": "#2CA02C", "warning": "#FF7F0E", "alert": "#D62728", "none": "#7F7F7F"}
TEMPLATE = "plotly_white"


def _layout(fig: go.Figure, title: str, **kwargs: Any) -> go.Figure:
    fig.update_layout(title=title or None, template=TEMPLATE,
                      margin={"l": 50, "r": 20, "t": 50 if title else 20, "b": 40}, **kwargs)
    return fig


def _message_figure(message: str, title: str = "") -> go.Figure:
    """An empty figure that says why there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title)


# -- reference vs current distribution ---------------------------------------------------


def numeric_bin_counts(values: Any, edges: list[float]) -> np.ndarray:
    """Counts of ``values`` in the profile's bins (outer bins open-ended, as in profile.py)."""
    x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    edges_arr = np.asarray(edges, dtype=float)
    idx = np.searchsorted(edges_arr[1:-1], x, side="right")
    return np.bincount(idx, minlength=max(len(edges_arr) - 1, 1))


def _shares(counts: np.ndarray | list[float]) -> np.ndarray:
    arr = np.asarray(counts, dtype=float)
    total = arr.sum()
    return arr / total if total > 0 else np.zeros_like(arr)


def _bin_labels(edges: list[float]) -> list[str]:
    n = len(edges) - 1
    labels = []
    for i in range(n):
        lo = "−∞" if i == 0 else f"{edges[i]:.4g}"
        hi = "+∞" if i == n - 1 else f"{edges[i + 1]:.4g}"
        labels.append(f"[{lo}, {hi})")
    return labels


def _current_numeric(current: Any, edges: list[float]) -> tuple[np.ndarray, float | None]:
    """Counts per reference bin and null share of the current data."""
    if isinstance(current, Mapping):
        counts = current.get("counts")
        if counts is None:
            raise ValueError("A numeric comparison needs 'counts' aligned to the reference bins.")
        counts = np.asarray(counts, dtype=float)
        if len(counts) != len(edges) - 1:
            raise ValueError(f"'counts' has {len(counts)} entries but the reference has "
                             f"{len(edges) - 1} bins.")
        return counts, current.get("null_share")
    s = pd.Series(current)
    null_share = float(s.isna().mean()) if len(s) else None
    return numeric_bin_counts(s, edges).astype(float), null_share


def _current_categorical(current: Any) -> tuple[dict[str, float], float | None]:
    if isinstance(current, Mapping):
        freq = current.get("frequencies", current)
        return {str(k): float(v) for k, v in freq.items()
                if not isinstance(v, (Mapping, list))}, current.get("null_share")
    s = pd.Series(current)
    null_share = float(s.isna().mean()) if len(s) else None
    counts = s.dropna().astype(str).value_counts()
    return {str(k): float(v) for k, v in counts.items()}, null_share


def profile_figure(column_profile: Mapping[str, Any], current: pd.Series | Mapping | None = None,
                   title: str = "") -> go.Figure:
    """Reference distribution of one column from its profile entry, optionally with current data.

    ``column_profile`` is one entry of ``BundleMeta.profile["columns"]`` (or
    ``profile["prediction"]``) as built by :mod:`core.profile`. ``current`` is either
    the raw current values (a Series or anything list-like) or an already aggregated
    dict: ``{"counts": [...]}`` aligned to the reference bins for numeric columns,
    ``{"frequencies": {value: count}}`` (or a plain ``{value: count}``) for categorical
    ones. Bars show the share of non-null rows per bin or category, so samples of any
    size compare; categories unseen in the reference are added at the end.
    """
    kind = column_profile.get("type")
    if kind == "numeric" and column_profile.get("edges"):
        return _numeric_profile_figure(column_profile, current, title)
    if kind == "categorical":
        return _categorical_profile_figure(column_profile, current, title)
    return _message_figure("No distribution was recorded for this column "
                           "(it has no values or an unsupported type).", title)


def _null_note(ref_null: float | None, cur_null: float | None) -> str:
    parts = []
    if ref_null:
        parts.append(f"reference nulls {ref_null:.1%}")
    if cur_null:
        parts.append(f"current nulls {cur_null:.1%}")
    return " · ".join(parts)


def _numeric_profile_figure(prof: Mapping[str, Any], current: Any, title: str) -> go.Figure:
    edges = [float(e) for e in prof["edges"]]
    ref_counts = np.asarray(prof.get("counts") or [0] * (len(edges) - 1), dtype=float)
    labels = _bin_labels(edges)
    lo = np.asarray(edges[:-1])
    hi = np.asarray(edges[1:])
    mids = (lo + hi) / 2
    widths = np.maximum(hi - lo, 0.0)
    # Degenerate single-value reference: give the bar a visible width.
    if not np.any(widths > 0):
        widths = np.full_like(widths, max(abs(edges[0]) * 0.05, 0.5))
    fig = go.Figure()
    fig.add_trace(go.Bar(name="reference", x=mids, y=_shares(ref_counts), width=widths * 0.95,
                         customdata=np.column_stack([labels, ref_counts]),
                         hovertemplate="%{customdata[0]}<br>share %{y:.1%}"
                                       "<br>n %{customdata[1]}<extra>reference</extra>",
                         marker_color=REFERENCE_COLOR, opacity=0.6))
    cur_null = None
    if current is not None:
        cur_counts, cur_null = _current_numeric(current, edges)
        fig.add_trace(go.Bar(name="current", x=mids, y=_shares(cur_counts), width=widths * 0.5,
                             customdata=np.column_stack([labels, cur_counts]),
                             hovertemplate="%{customdata[0]}<br>share %{y:.1%}"
                                           "<br>n %{customdata[1]}<extra>current</extra>",
                             marker_color=CURRENT_COLOR, opacity=0.8))
    note = _null_note(prof.get("null_share"), cur_null)
    if note:
        fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper",
                           x=1, y=1.02, xanchor="right", yanchor="bottom", font={"size": 11})
    fig.update_yaxes(title="share of rows", tickformat=".0%")
    fig.update_xaxes(title="value (outer bins are open-ended)")
    return _layout(fig, title, barmode="overlay", bargap=0, showlegend=current is not None)


def _categorical_profile_figure(prof: Mapping[str, Any], current: Any, title: str) -> go.Figure:
    ref_freq = {str(k): float(v) for k, v in (prof.get("frequencies") or {}).items()}
    other = float(prof.get("other") or 0)
    categories = list(ref_freq)
    ref_values = [ref_freq[c] for c in categories]
    if other:
        categories.append("(other)")
        ref_values.append(other)
    cur_null = None
    cur_values: list[float] | None = None
    if current is not None:
        cur_freq, cur_null = _current_categorical(current)
        unseen = [c for c in cur_freq if c not in ref_freq]
        if other:
            # The reference lumped its rare levels together; unseen ones may be among them.
            cur_values = [cur_freq.get(c, 0.0) for c in categories[:-1]]
            cur_values.append(sum(cur_freq[c] for c in unseen))
        else:
            categories = categories + unseen
            ref_values = ref_values + [0.0] * len(unseen)
            cur_values = [cur_freq.get(c, 0.0) for c in categories]
    fig = go.Figure()
    fig.add_trace(go.Bar(name="reference", x=categories, y=_shares(ref_values),
                         customdata=ref_values, marker_color=REFERENCE_COLOR,
                         hovertemplate="%{x}<br>share %{y:.1%}<br>n %{customdata}"
                                       "<extra>reference</extra>"))
    if cur_values is not None:
        fig.add_trace(go.Bar(name="current", x=categories, y=_shares(cur_values),
                             customdata=cur_values, marker_color=CURRENT_COLOR,
                             hovertemplate="%{x}<br>share %{y:.1%}<br>n %{customdata}"
                                           "<extra>current</extra>"))
    note = _null_note(prof.get("null_share"), cur_null)
    if note:
        fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper",
                           x=1, y=1.02, xanchor="right", yanchor="bottom", font={"size": 11})
    fig.update_yaxes(title="share of rows", tickformat=".0%")
    fig.update_xaxes(type="category")
    return _layout(fig, title, barmode="group", showlegend=current is not None)
