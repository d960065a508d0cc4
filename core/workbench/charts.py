"""Plotly figures used by the workbench pages, model cards and monitoring exports.

Every function returns a ``plotly.graph_objects.Figure`` built from plain data
(profile dicts, pandas frames of metrics), so figures are testable by their traces
and data rather than by pixels, and the same figure serves a page, an HTML card or
a Quarto chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.model.profile import one_bin_per_value

REFERENCE_COLOR = "#636EFA"
CURRENT_COLOR = "#EF553B"
STATUS_COLORS = {"ok": "#2CA02C", "warning": "#FF7F0E", "alert": "#D62728", "none": "#7F7F7F"}
TEMPLATE = "plotly_white"
# Beyond this many whole values a comparison is drawn with bins, not one bar per value.
MAX_DISCRETE_BARS = 80


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


def _one_window(fig: go.Figure, frame: pd.DataFrame, bars: bool = False) -> None:
    """A time axis around a lone window: plotly would zoom to a millisecond around it."""
    starts = pd.to_datetime(frame["window_start"]).unique()
    if len(starts) != 1 or "window_end" not in frame:
        return
    start = pd.Timestamp(pd.to_datetime(frame["window_start"]).iloc[0])  # the one start
    span = pd.Timestamp(frame["window_end"].iloc[0]) - start
    if span <= pd.Timedelta(0):
        return
    fig.update_xaxes(range=[start - span, start + span])
    if bars:
        fig.update_traces(width=span.total_seconds() * 1000 * 0.6, selector={"type": "bar"})


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


def _fmt(x: float) -> str:
    """A bin edge as people read it: 9,000 or 1.25 or 0.0031."""
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.4g}" if abs(x) >= 1 else f"{x:.3g}"


def _current_numeric(current: Any, edges: list[float]) -> tuple[np.ndarray, float | None]:
    """Counts per reference bin and null share of pre-counted current data."""
    counts = current.get("counts")
    if counts is None:
        raise ValueError("A numeric comparison needs 'counts' aligned to the reference bins.")
    counts = np.asarray(counts, dtype=float)
    if len(counts) != len(edges) - 1:
        raise ValueError(f"'counts' has {len(counts)} entries but the reference has "
                         f"{len(edges) - 1} bins.")
    return counts, current.get("null_share")


def numeric_bins(edges: Any, ref_counts: Any, current: Any = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float | None, bool]:
    """The bins a numeric profile is drawn on: ``(edges, reference counts, current counts,
    current null share, discrete)``.

    Raw current values keep their real positions: bins are added below and above the
    reference's range for values outside it (a value of 9,000 is drawn at 9,000, not in
    the reference's lowest bin). For a column with one bin per whole value, every value
    seen in either sample gets its own bin. Counts given already aggregated
    (``{"counts": [...]}``) can only be drawn on the reference's bins.
    """
    e = np.asarray(edges, dtype=float)
    ref = np.asarray(ref_counts, dtype=float)
    discrete = one_bin_per_value(e)
    if current is None:
        return e, ref, None, None, discrete
    if isinstance(current, Mapping):
        counts, null_share = _current_numeric(current, list(e))
        return e, ref, counts, null_share, discrete
    s = pd.Series(current)
    null_share = float(s.isna().mean()) if len(s) else None
    x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    if discrete and len(x) and np.all(x == np.round(x)):
        values = np.union1d(e[:-1], np.unique(x))
        if len(values) <= MAX_DISCRETE_BARS:
            new = np.append(values, values[-1] + 1)
            ref_new = np.zeros(len(values))
            ref_new[np.searchsorted(values, e[:-1])] = ref
            cur = np.bincount(np.searchsorted(values, x), minlength=len(values)).astype(float)
            return new, ref_new, cur, null_share, True
    lo_pad = bool(len(x)) and x.min() < e[0]
    hi_pad = bool(len(x)) and x.max() > e[-1]
    new = np.concatenate([[x.min()] if lo_pad else [], e, [x.max()] if hi_pad else []])
    ref_new = np.concatenate([[0.0] if lo_pad else [], ref, [0.0] if hi_pad else []])
    if len(new) < 2 or new[-1] <= new[0]:
        # every value equal, in both samples: one bin
        return e, ref, np.array([float(len(x))] + [0.0] * (len(e) - 2)), null_share, discrete
    cur = np.histogram(x, bins=new)[0].astype(float)
    return new, ref_new, cur, null_share, discrete and not (lo_pad or hi_pad)


def density_unit(widths: np.ndarray) -> float:
    """A power of ten near the median bin width: the span of values a density is given
    per (the bars' areas keep their meaning whatever the unit)."""
    positive = widths[widths > 0]
    if not len(positive):
        return 1.0
    return float(10.0 ** np.round(np.log10(np.median(positive))))


def _density(counts: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Share of rows per unit of value: a bar's area is its share of the rows."""
    shares = _shares(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(widths > 0, shares / np.where(widths > 0, widths, 1), 0.0)


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
    ``profile["prediction"]``) as built by :mod:`core.model.profile`. ``current`` is either
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
    counts = prof.get("counts") or [0] * (len(edges) - 1)
    e, ref_counts, cur_counts, cur_null, discrete = numeric_bins(edges, counts, current)
    lo, hi = e[:-1], e[1:]
    widths = hi - lo
    fig = go.Figure()
    if not np.any(widths > 0):
        # every reference value equal: one bar holding all the rows
        span = max(abs(e[0]) * 0.05, 0.5)
        x, widths, heights = np.array([e[0]]), np.array([span]), np.array([1.0])
        labels, ref_counts, y_title = [_fmt(e[0])], ref_counts[:1], "share of rows"
        cur_y = None if cur_counts is None else _shares(cur_counts)[:1]
    elif discrete:
        # one bar per whole value, centred on it; each is one unit wide, so its height
        # is its share
        x, heights, y_title = lo, _shares(ref_counts), "share of rows"
        labels = [_fmt(v) for v in lo]
        widths = np.full(len(lo), 0.9)
        cur_y = None if cur_counts is None else _shares(cur_counts)
    else:
        x = (lo + hi) / 2
        # heights per a round span of values near a typical bin's width, so the axis
        # reads "3% of rows per 100" rather than 0.0003 per unit
        unit = density_unit(widths)
        heights = _density(ref_counts, widths) * unit
        labels = [f"{_fmt(a)} to {_fmt(b)}" for a, b in zip(lo, hi, strict=True)]
        y_title = f"share of rows per {_fmt(unit)} of value"
        cur_y = None if cur_counts is None else _density(cur_counts, widths) * unit
    ref_share = _shares(ref_counts)
    fig.add_trace(go.Bar(name="reference", x=x, y=heights, width=widths,
                         customdata=np.column_stack([labels, ref_counts, ref_share]),
                         hovertemplate="%{customdata[0]}<br>%{customdata[2]:.1%} of rows"
                                       "<br>n %{customdata[1]}<extra>reference</extra>",
                         marker_color=REFERENCE_COLOR, opacity=0.6))
    if cur_y is not None and cur_counts is not None:
        cur_counts = cur_counts[:len(x)]
        fig.add_trace(go.Bar(name="current", x=x, y=cur_y, width=widths * 0.5,
                             customdata=np.column_stack([labels, cur_counts,
                                                         _shares(cur_counts)]),
                             hovertemplate="%{customdata[0]}<br>%{customdata[2]:.1%} of rows"
                                           "<br>n %{customdata[1]}<extra>current</extra>",
                             marker_color=CURRENT_COLOR, opacity=0.8))
    _share_axis_and_nulls(fig, prof, cur_null)
    fig.update_yaxes(title=y_title, tickformat=".1~%")
    aggregated = isinstance(current, Mapping)
    fig.update_xaxes(title="value" + (" (values outside the training range are counted in the "
                                      "first and last bars)" if aggregated else ""))
    return _layout(fig, title, barmode="overlay", bargap=0, showlegend=current is not None)


def _share_axis_and_nulls(fig: go.Figure, prof: Mapping[str, Any], cur_null: Any) -> None:
    """The y axis of a distribution figure, and the null shares noted above the plot."""
    note = _null_note(prof.get("null_share"), cur_null)
    if note:
        fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper",
                           x=1, y=1.02, xanchor="right", yanchor="bottom", font={"size": 11})
    fig.update_yaxes(title="share of rows", tickformat=".0%")


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
    _share_axis_and_nulls(fig, prof, cur_null)
    fig.update_xaxes(type="category")
    return _layout(fig, title, barmode="group", showlegend=current is not None)


# -- monitoring ---------------------------------------------------------------------------------


def metric_figure(metrics: pd.DataFrame, metric: str, *, warning: float | None = None,
                  alert: float | None = None, direction: str = "above",
                  title: str = "") -> go.Figure:
    """One metric over time: a line with markers sized by the window's row count, and
    shaded warning/alert bands when thresholds are given.

    ``metrics`` has ``window_start`` and ``metric``, and ``n_actual`` or ``n``.
    """
    if metrics is None or metrics.empty or metric not in metrics:
        return _message_figure("No windows to show yet: log predictions (or upload data) and "
                               "actuals first.", title)
    x = metrics["window_start"]
    y = metrics[metric].astype(float)
    n = metrics["n_actual"] if "n_actual" in metrics else metrics.get("n", pd.Series(1, x.index))
    n = n.fillna(0).astype(float)
    size = 6 + 18 * np.sqrt(n / n.max()) if n.max() > 0 else np.full(len(n), 8.0)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=metric,
                             marker={"size": size, "color": REFERENCE_COLOR},
                             customdata=np.column_stack([n]),
                             hovertemplate="%{x}<br>" + metric + " %{y:.4g}"
                                           "<br>n %{customdata[0]:,.0f}<extra></extra>",
                             connectgaps=False))
    finite = y[np.isfinite(y)]
    levels = [v for v in (warning, alert) if v is not None]
    lo = float(min([*finite, *levels])) if len(finite) or levels else 0.0
    hi = float(max([*finite, *levels])) if len(finite) or levels else 1.0
    pad = (hi - lo) * 0.15 or abs(hi) * 0.15 or 1.0
    lo, hi = lo - pad, hi + pad
    bands = []
    if direction == "above":
        if warning is not None:
            bands.append(("warning", warning, alert if alert is not None else hi))
        if alert is not None:
            bands.append(("alert", alert, hi))
    else:
        if warning is not None:
            bands.append(("warning", alert if alert is not None else lo, warning))
        if alert is not None:
            bands.append(("alert", lo, alert))
    for status, y0, y1 in bands:
        fig.add_hrect(y0=y0, y1=y1, fillcolor=STATUS_COLORS[status], opacity=0.12,
                      line_width=0, annotation_text=status, annotation_position="top left",
                      name=status)
    fig.update_yaxes(title=metric, range=[lo, hi])
    fig.update_xaxes(title="window start (UTC)")
    _one_window(fig, metrics)
    return _layout(fig, title, showlegend=False)


def drift_heatmap(drift: pd.DataFrame, title: str = "") -> go.Figure:
    """Columns × windows, coloured by status (ok/warning/alert by the method's levels),
    with the score in the hover."""
    # drift pulls in scipy; pages that draw no heatmap do not pay for it
    from core.monitoring.drift import MIN_VALUES

    if drift is None or drift.empty:
        return _message_figure("No drift to show: it needs logged rows and a reference "
                               "(a version stored with a training sample).", title)
    from core.monitoring.thresholds import Rule, drift_status

    if drift["p_adjusted"].isna().all():
        from core.monitoring.drift import MIN_VALUES

        return _message_figure(
            f"No window has enough values to judge drift yet (a column needs {MIN_VALUES} "
            "values in a window): use a longer window, or wait for more predictions. The "
            "statistics so far are in the table below.", title)
    frame = drift.copy()
    levels = {"ok": 0.0, "warning": 1.0, "alert": 2.0}
    # the same rule as the marks: evidence after BH, then the size levels
    level = [levels.get(drift_status(rec, Rule("drift", warning=rec["warning"],
                                                alert=rec["alert"])), np.nan)
             # pandas types the records' keys as Hashable; the drift frame's columns are str
             for rec in cast(list[dict[str, Any]], frame.to_dict("records"))]
    frame["level"] = level
    cols = list(dict.fromkeys(frame["column"]))
    windows = sorted(frame["window_start"].unique())
    z = frame.pivot_table(index="column", columns="window_start", values="level",
                          aggfunc="max", dropna=False).reindex(index=cols, columns=windows)
    labels = []
    for m, s, n, lv, mn in zip(frame["method"], frame["score"], frame["n"], frame["level"],
                               frame["min_n"]):
        if pd.isna(s):
            labels.append(f"not judged ({n} values)" if n else "no data")
        elif pd.isna(lv):
            labels.append(f"{m}: {s:.3g}, not judged ({n} values, needs {int(mn)})")
        else:
            labels.append(f"{m}: {s:.3g}")
    text = frame.assign(label=labels).pivot_table(
        index="column", columns="window_start", values="label",
        aggfunc="first").reindex(index=cols, columns=windows)
    colorscale = [[0.0, STATUS_COLORS["ok"]], [0.5, STATUS_COLORS["warning"]],
                  [1.0, STATUS_COLORS["alert"]]]
    # windows as labels: a date axis would zoom to a millisecond around a lone window
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(dtype=float), x=[f"{pd.Timestamp(w):%Y-%m-%d %H:%M}" for w in windows],
        y=cols,
        text=text.fillna("no data").to_numpy(), zmin=0, zmax=2, colorscale=colorscale,
        hovertemplate="%{y}<br>%{x}<br>%{text}<extra></extra>", xgap=1, ygap=1,
        colorbar={"tickvals": [0, 1, 2], "ticktext": ["ok", "warning", "alert"]}))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(type="category", title="window start (UTC)")
    return _layout(fig, title, height=max(260, 28 * len(cols) + 120))


def traffic_figure(traffic: pd.DataFrame, title: str = "") -> go.Figure:
    """Requests per window, latency percentiles (ms) and error rate, stacked."""
    from plotly.subplots import make_subplots

    if traffic is None or traffic.empty:
        return _message_figure("No requests logged yet: deploy the model and send it "
                               "predictions.", title)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("requests", "latency (ms)", "error rate"))
    x = traffic["window_start"]
    fig.add_trace(go.Bar(x=x, y=traffic["requests"], name="requests",
                         marker_color=REFERENCE_COLOR), row=1, col=1)
    for col, dash in (("p50_ms", "solid"), ("p90_ms", "dash"), ("p99_ms", "dot")):
        fig.add_trace(go.Scatter(x=x, y=traffic[col], name=col.replace("_ms", ""),
                                 mode="lines+markers", line={"dash": dash}), row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=traffic["error_rate"], name="error rate",
                             mode="lines+markers", line={"color": STATUS_COLORS["alert"]}),
                  row=3, col=1)
    fig.update_yaxes(tickformat=".1%", rangemode="nonnegative", row=3, col=1)
    _one_window(fig, traffic, bars=True)
    return _layout(fig, title, height=600)
