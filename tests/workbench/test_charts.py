"""Figures are checked by their traces and data, not pixels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import bundle
from core.workbench import charts


@pytest.fixture(scope="module")
def profile(house_data, house_model):
    return bundle(house_model, house_data.drop(columns=["price"]), name="h").meta.profile


def _bar_extents(bar) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.asarray(bar.x, dtype=float), np.asarray(bar.width, dtype=float)
    return x - w / 2, x + w / 2


def test_reference_is_a_density_on_the_real_bin_edges(profile):
    prof = profile["columns"]["sqft_living"]
    (ref,) = charts.profile_figure(prof, title="sqft").data
    edges, counts = np.asarray(prof["edges"]), np.asarray(prof["counts"], dtype=float)
    lo, hi = _bar_extents(ref)
    assert np.allclose(lo, edges[:-1]) and np.allclose(hi, edges[1:])
    # equal-count bins of unequal width: heights differ, each bar's area is its share
    # heights are shares per `unit` of value, a power of ten near the median bin width
    unit = 10.0 ** np.round(np.log10(np.median(np.diff(edges))))
    fig = charts.profile_figure(prof)
    assert fig.layout.yaxis.title.text == f"share of rows per {unit:,.0f} of value"
    assert np.allclose(ref.y, counts / counts.sum() / np.diff(edges) * unit)
    assert np.allclose(np.asarray(ref.y) * np.diff(edges) / unit, counts / counts.sum())
    assert np.ptp(ref.y) > 0.5 * max(ref.y)  # not flat


def test_current_values_are_drawn_where_they_are():
    from core.model.profile import profile_series

    rng = np.random.default_rng(0)
    prof = profile_series(pd.Series(rng.uniform(10_000, 50_000, 1000)), "float")
    current = np.concatenate([np.full(10, 9_000.0), rng.uniform(10_000, 60_000, 90)])
    ref, cur = charts.profile_figure(prof, pd.Series(current)).data
    assert np.allclose(cur.x, ref.x)  # both on the same bins (the current bars narrower)
    lo, hi = _bar_extents(ref)
    edges = np.concatenate([[9_000.0], prof["edges"], [current.max()]])
    assert np.allclose(lo, edges[:-1]) and np.allclose(hi, edges[1:])
    # the oracle: numpy's density histogram of the current values on the same edges
    unit = charts.density_unit(np.diff(edges))
    assert np.allclose(cur.y, np.histogram(current, bins=edges, density=True)[0] * unit)
    assert ref.y[0] == 0 and ref.y[-1] == 0  # the reference has nothing out there
    first = int(np.argmin(lo))
    assert (lo[first], hi[first]) == (9_000.0, prof["edges"][0])
    assert cur.customdata[first][0] == "9,000 to " + f"{prof['edges'][0]:,.4g}"


def test_whole_values_are_one_bar_each(profile, house_data):
    prof = profile["columns"]["grade"]
    values = np.asarray(prof["edges"][:-1])
    current = pd.Series([5, 5, 13, 13, 13, None])  # 13 is a grade training never saw
    ref, cur = charts.profile_figure(prof, current).data
    assert list(ref.x) == [*values, 13]
    counts = np.asarray(prof["counts"], dtype=float)
    assert np.allclose(ref.y, np.r_[counts / counts.sum(), 0])
    assert np.allclose(cur.y, [0.4 if v == 5 else 0.6 if v == 13 else 0 for v in ref.x])
    notes = charts.profile_figure(prof, current).layout.annotations
    assert any("current nulls 16.7%" in a.text for a in notes)


def test_profile_figure_aggregated_current_and_errors(profile):
    prof = profile["columns"]["yr_built"]
    k = len(prof["counts"])
    fig = charts.profile_figure(prof, {"counts": [1] * k, "null_share": 0.5})
    widths = np.diff(prof["edges"])
    assert np.allclose(fig.data[1].y, 1 / k / widths * charts.density_unit(widths))
    assert any("current nulls 50.0%" in a.text for a in fig.layout.annotations)
    assert "outside the training range" in fig.layout.xaxis.title.text
    with pytest.raises(ValueError, match="bins"):
        charts.profile_figure(prof, {"counts": [1, 2]})


def test_numeric_bins_match_numpy(profile, house_data):
    prof = profile["columns"]["sqft_living"]
    x = house_data["sqft_living"].to_numpy() * 2
    edges, ref, cur, _, discrete = charts.numeric_bins(prof["edges"], prof["counts"], x)
    assert not discrete and edges[-1] == x.max() and ref[-1] == 0
    assert np.array_equal(cur, np.histogram(x, bins=edges)[0])


def test_profile_figure_categorical_with_unseen(profile):
    prof = profile["columns"]["zipcode"]
    fig = charts.profile_figure(prof, pd.Series(["98001", "98001", "00000", None]))
    assert list(fig.data[0].x)[-1] == "00000"
    assert fig.data[0].y[-1] == 0
    assert fig.data[1].y[list(fig.data[1].x).index("98001")] == pytest.approx(2 / 3)
    only_ref = charts.profile_figure(prof)
    assert len(only_ref.data) == 1 and not only_ref.layout.showlegend


def test_profile_figure_without_distribution():
    fig = charts.profile_figure({"type": "other", "n": 3})
    assert not fig.data and "No distribution" in fig.layout.annotations[0].text


def _metrics():
    starts = pd.date_range("2025-01-06", periods=4, freq="7D", tz="UTC")
    return pd.DataFrame({"window_start": starts, "n": [10, 0, 40, 90],
                         "n_actual": [5, 0, 20, 45], "rmse": [1.0, np.nan, 2.0, 4.0]})


def test_metric_figure_sizes_and_bands():
    fig = charts.metric_figure(_metrics(), "rmse", warning=2.5, alert=3.5)
    (line,) = fig.data
    assert list(line.y[[0, 2, 3]]) == [1.0, 2.0, 4.0] and np.isnan(line.y[1])
    assert line.marker.size[3] > line.marker.size[2] > line.marker.size[0]
    shapes = fig.layout.shapes
    assert [(s.y0, s.y1) for s in shapes][0] == (2.5, 3.5) and shapes[1].y0 == 3.5
    below = charts.metric_figure(_metrics(), "rmse", warning=2.0, direction="below")
    assert below.layout.shapes[0].y1 == 2.0
    empty = charts.metric_figure(pd.DataFrame(), "rmse")
    assert not empty.data and "No windows" in empty.layout.annotations[0].text


def test_drift_heatmap_levels():
    # colours follow the drift marks: evidence after BH (p_adjusted) and the size levels
    starts = pd.date_range("2025-01-06", periods=2, freq="7D", tz="UTC")
    drift = pd.DataFrame({
        "window_start": np.repeat(starts, 2), "column": ["a", "b"] * 2,
        "method": ["wasserstein", "ks", "wasserstein", "ks"],
        "score": [0.01, 0.5, 0.2, 0.01], "warning": [0.05, 0.1, 0.05, 0.1],
        "alert": [0.1, 0.2, 0.1, 0.2], "n": [400, 400, 400, 400],
        "min_n": [300, 46, 300, 46], "p_adjusted": [0.5, 1e-6, 1e-5, 0.9],
        "drifted": [False, True, True, False]})
    fig = charts.drift_heatmap(drift)
    (heat,) = fig.data
    assert list(heat.y) == ["a", "b"]
    assert heat.z.tolist() == [[0.0, 2.0], [2.0, 0.0]]
    assert heat.text[0][1] == "wasserstein: 0.2"
    assert "No drift" in charts.drift_heatmap(pd.DataFrame()).layout.annotations[0].text
    # a window too small to judge: an empty cell that says so
    few = drift.assign(n=[12, 400, 400, 400], drifted=[None, True, True, False])
    (heat,) = charts.drift_heatmap(few).data
    assert np.isnan(heat.z[0][0])
    assert heat.text[0][0] == "wasserstein: 0.01, not judged (12 values, needs 300)"
    # nothing judged anywhere: a message instead of an empty grid
    none = charts.drift_heatmap(drift.assign(score=np.nan, n=5, p_adjusted=np.nan, drifted=None))
    assert not none.data and "enough values to judge drift" in none.layout.annotations[0].text


def test_traffic_figure():
    starts = pd.date_range("2025-01-06", periods=3, freq="D", tz="UTC")
    traffic = pd.DataFrame({"window_start": starts, "requests": [3, 0, 5],
                            "error_rate": [0.0, np.nan, 0.2], "p50_ms": [1, np.nan, 2],
                            "p90_ms": [2, np.nan, 3], "p99_ms": [3, np.nan, 4]})
    fig = charts.traffic_figure(traffic)
    assert [t.name for t in fig.data] == ["requests", "p50", "p90", "p99", "error rate"]
    assert list(fig.data[0].y) == [3, 0, 5]
    assert "No requests" in charts.traffic_figure(None).layout.annotations[0].text


def test_a_lone_window_gets_a_readable_time_axis():
    start = pd.Timestamp("2026-11-23", tz="UTC")
    one = pd.DataFrame({"window_start": [start], "window_end": [start + pd.Timedelta(days=7)],
                        "rmse": [3.0], "n": [40], "requests": [40], "error_rate": [0.0],
                        "p50_ms": [8.0], "p90_ms": [9.0], "p99_ms": [12.0]})
    week = pd.Timedelta(days=7)
    metric = charts.metric_figure(one, "rmse")
    assert [pd.Timestamp(x) for x in metric.layout.xaxis.range] == [start - week, start + week]
    traffic = charts.traffic_figure(one)
    assert [pd.Timestamp(x) for x in traffic.layout.xaxis.range] == [start - week,
                                                                     start + week]
    assert traffic.data[0].width == pytest.approx(week.total_seconds() * 1000 * 0.6)
    # several windows: plotly's own range
    two = pd.concat([one, one.assign(window_start=start + week,
                                     window_end=start + 2 * week)], ignore_index=True)
    assert charts.metric_figure(two, "rmse").layout.xaxis.range is None
    drift = pd.DataFrame({"window_start": [start], "column": ["a"], "method": ["ks"],
                          "score": [0.5], "warning": [0.1], "alert": [0.2], "n": [40],
                          "min_n": [46], "p_adjusted": [0.001], "drifted": [True]})
    heat = charts.drift_heatmap(drift)
    assert heat.layout.xaxis.type == "category" and list(heat.data[0].x) == ["2026-11-23 00:00"]
