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


def test_profile_figure_numeric_reference_and_current(profile, house_data):
    prof = profile["columns"]["sqft_living"]
    fig = charts.profile_figure(prof, house_data["sqft_living"] * 2, title="sqft")
    ref, cur = fig.data
    assert (ref.name, cur.name) == ("reference", "current")
    assert np.allclose(ref.y, np.asarray(prof["counts"]) / sum(prof["counts"]))
    expected = charts.numeric_bin_counts(house_data["sqft_living"] * 2, prof["edges"])
    assert np.allclose(cur.y, expected / expected.sum())
    assert cur.y[-1] > ref.y[-1]  # doubled sizes pile up in the open top bin
    assert fig.layout.title.text == "sqft"


def test_profile_figure_aggregated_current_and_errors(profile):
    prof = profile["columns"]["grade"]
    k = len(prof["counts"])
    fig = charts.profile_figure(prof, {"counts": [1] * k, "null_share": 0.5})
    assert np.allclose(fig.data[1].y, 1 / k)
    assert any("current nulls 50.0%" in a.text for a in fig.layout.annotations)
    with pytest.raises(ValueError, match="bins"):
        charts.profile_figure(prof, {"counts": [1, 2]})


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
