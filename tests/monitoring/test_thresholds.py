"""The status headline: worst mark over the latest windows with enough rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import InvalidArgument
from core.monitoring import thresholds as th

W = [pd.Timestamp("2025-03-03", tz="UTC") + pd.Timedelta(weeks=i) for i in range(5)]


def _metrics(n_actual, rmse):
    return pd.DataFrame({"window_start": W[:len(rmse)], "n": [100] * len(rmse),
                         "n_actual": n_actual, "rmse": rmse, "note": ""})


def test_worst_over_the_latest_windows_with_enough_rows_names_metric_and_window():
    settings = th.Settings(rules=[th.Rule("rmse", warning=5, alert=10)], lookback=3)
    # alert in W0 (too old), ok, alert in W2, warning in W3, 3 rows in W4 (not judged)
    marks = th.evaluate(settings, _metrics([50, 50, 50, 50, 3], [20, 1, 12, 7, 99]))
    assert list(marks["status"]) == ["alert", "ok", "alert", "warning", "none"]
    head = th.headline(marks, settings.lookback)
    assert head.windows == W[1:4]
    assert (head.status, head.metric, head.window_start, head.n) == ("alert", "rmse", W[2], 50)
    assert head.message.startswith("alert: rmse = 12 in the window of 2025-03-17 00:00 UTC")
    assert head.message.endswith("; too few rows in the latest window to judge rmse")
    one = th.headline(marks, 1)
    assert (one.status, one.window_start) == ("warning", W[3])


def test_never_ok_below_the_minimum():
    settings = th.Settings(rules=[th.Rule("rmse", alert=10)])  # min_rows 30 by default
    marks = th.evaluate(settings, _metrics([3], [1.0]))
    assert list(marks["status"]) == ["none"] and list(marks["n"]) == [3]
    head = th.headline(marks)
    assert head.status == "none"
    assert head.message == ("not enough rows to judge: rmse has 3 rows in the window of "
                            "2025-03-03 00:00 UTC and is judged from 30")
    assert th.headline(th.evaluate(th.Settings(), _metrics([3], [1.0]))).status == "none"
    # ok on drift, but the metric with 3 rows is named, not silently passed over
    drift = pd.DataFrame({"window_start": W[:1], "column": ["x"], "method": ["ks"],
                          "score": [0.05], "n": [100], "min_n": [46], "p_adjusted": [0.7],
                          "drifted": [False]})
    head = th.headline(th.evaluate(settings, _metrics([3], [1.0]), drift))
    assert head.status == "ok" and head.message.endswith("to judge rmse")


def test_drift_marks_follow_the_verdicts():
    rule = th.Rule("drift:x", warning=0.1, alert=0.2)
    base = {"score": 0.5, "p_adjusted": 0.001, "drifted": True}
    assert th.drift_status(base, rule) == "alert"
    assert th.drift_status({**base, "p_adjusted": 0.2, "drifted": False}, rule) == "ok"
    # evidence but too few values to rule out a bigger drift: what was found still shows
    assert th.drift_status({**base, "score": 0.15, "drifted": None}, rule) == "warning"
    assert th.drift_status({**base, "p_adjusted": 0.2, "drifted": None}, rule) == "none"
    assert th.drift_status({**base, "p_adjusted": np.nan, "drifted": None}, rule) == "none"


def test_settings_minimum_rows_and_lookback_round_trip():
    s = th.Settings(window="day", min_rows=50, lookback=5)
    assert th.Settings.from_dict(s.to_dict()) == s
    assert th.Settings.from_dict({"window": "day"}).min_rows == th.MIN_ROWS
    for bad in ({"min_rows": 0}, {"lookback": -1}, {"min_rows": 2.5}, {"lookback": "x"}):
        with pytest.raises(InvalidArgument, match="min_rows|lookback"):
            th.Settings.from_dict(bad)


def test_a_legacy_p_value_rule_on_drift_falls_back_to_the_method_levels():
    drift = pd.DataFrame({"window_start": W[:2], "column": ["x", "x"], "method": ["ks", "ks"],
                          "score": [0.5, 0.03], "n": [60, 60], "min_n": [46, 46],
                          "p_adjusted": [1e-6, 0.8], "drifted": [True, False]})
    legacy = th.Settings(rules=[th.Rule("drift:x", alert=0.05, direction="below")])
    marks = th.evaluate(legacy, drift=drift)
    assert list(marks["status"]) == ["alert", "ok"] and list(marks["alert"]) == [0.2, 0.2]
