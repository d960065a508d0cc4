"""Actuals uploaded later and data uploaded to be scored."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import store_version
from sklearn import metrics as skm

from core.errors import InvalidArgument, InvalidInput
from core.monitoring.actuals import (
    normalize_labels,
    read_table,
    save_actuals,
    score_upload,
    truth_column_guess,
)
from core.monitoring.monitor import open_monitor
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture()
def house(tmp_path, house_data, house_model):
    store = VersionStore(str(tmp_path / "board"))
    b = store_version(store, house_model, house_data, "price", "house")
    return store, b, house_data


def _scored(store, b, rows, truth=None):
    data = rows.drop(columns=["price"]).copy()
    data["when"] = T0
    if truth is not None:
        data["truth"] = truth
    return score_upload(store, b, data, time_column="when",
                        actual_column="truth" if truth is not None else None)


def test_later_upload_replaces_earlier_values(house):
    store, b, data = house
    rows = data.iloc[:6]
    up = _scored(store, b, rows)
    first = pd.DataFrame({"rid": up.request_id, "row": range(6), "y": rows["price"].to_numpy()})
    save_actuals(store, "house", first, key_column="rid", actual_column="y", row_column="row")
    fixed = first.iloc[:2].assign(y=[1.0, 2.0])
    save_actuals(store, "house", fixed, key_column="rid", actual_column="y", row_column="row")
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        got = mon.query("SELECT row, actual FROM monitoring ORDER BY row")
        m = mon.metrics("day")
    assert list(got["actual"].iloc[:2]) == [1.0, 2.0]
    assert got["actual"].iloc[2] == rows["price"].iloc[2]
    assert m["n_actual"].iloc[0] == 6


def test_actuals_keyed_on_a_logged_feature(house):
    store, b, data = house
    rows = data.drop_duplicates("sqft_living").iloc[:5]
    _scored(store, b, rows)
    truth = pd.DataFrame({"sqft": rows["sqft_living"].to_numpy(), "price": rows["price"]})
    save_actuals(store, "house", truth, key_column="sqft", actual_column="price",
                 on="sqft_living", log_columns=["request_id", "sqft_living"])
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        m = mon.metrics("day")
        pred = mon.query("SELECT prediction, actual FROM monitoring ORDER BY row")
    assert m["n_actual"].iloc[0] == 5
    assert m["rmse"].iloc[0] == pytest.approx(
        skm.root_mean_squared_error(pred["actual"], pred["prediction"]))


def test_scored_upload_keeps_truth_and_log_format(house):
    store, b, data = house
    up = _scored(store, b, data.iloc[:12], truth=data["price"].iloc[:12].to_numpy())
    assert up.rows == 12 and up.actuals.rows == 12 and up.paths
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        cols = mon.columns
        routes = mon.query("SELECT DISTINCT route, status FROM monitoring")
    assert cols[:9] == ["ts", "request_id", "model", "version", "route", "status",
                        "latency_ms", "row", "error_code"]
    assert routes.to_dict("records") == [{"route": "upload", "status": 200}]
    with open_monitor(store, "house", b.meta, source="log") as mon:
        assert not mon.has_rows


@pytest.mark.parametrize("frame,kwargs,error,message", [
    (pd.DataFrame(), {}, InvalidArgument, "empty"),
    (pd.DataFrame({"k": [1], "y": [1.0]}), {"key_column": "nope"}, InvalidArgument,
     "not in the file"),
    (pd.DataFrame({"k": [1], "y": [1.0]}), {"actual_column": "k"}, InvalidArgument, "must differ"),
    (pd.DataFrame({"k": [None, "a"], "y": [1.0, 2.0]}), {}, InvalidInput, "empty in rows \\[0\\]"),
    (pd.DataFrame({"k": ["a", "b"], "y": [1.0, "x"]}), {}, InvalidInput, "not numbers"),
    (pd.DataFrame({"k": ["a"], "y": [None]}), {}, InvalidInput, "no values"),
    (pd.DataFrame({"k": ["a"], "y": [1.0]}), {"on": "'; DROP", "log_columns": ["request_id"]},
     InvalidArgument, "not a logged column"),
    (pd.DataFrame({"k": ["a"], "y": [1.0], "r": [-1]}), {"row_column": "r"}, InvalidInput,
     "whole numbers"),
])
def test_bad_actuals_are_refused_and_nothing_is_written(house, frame, kwargs, error, message):
    store, *_ = house
    args = {"key_column": "k", "actual_column": "y", **kwargs}
    with pytest.raises(error, match=message):
        save_actuals(store, "house", frame, **args)
    assert not store.fs.exists(store.path(".fixative", "actuals"))


def test_labels_are_normalised_to_the_classes():
    got = normalize_labels(pd.Series([1, 0.0, "1", " 0 ", None]), [0, 1])
    assert list(got[:4]) == ["1", "0", "1", "0"] and got.iloc[4] is None or pd.isna(got.iloc[4])
    flags = normalize_labels(pd.Series(["TRUE", "false", True]), [False, True])
    assert list(flags) == ["True", "False", "True"]
    assert normalize_labels(pd.Series(["yes", "No"]), ["no", "yes"]).tolist() == ["yes", "no"]
    with pytest.raises(InvalidInput, match="labels the model does not know: maybe"):
        normalize_labels(pd.Series(["yes", "maybe"]), ["no", "yes"])


def test_score_upload_errors(house):
    store, b, data = house
    rows = data.iloc[:3].drop(columns=["price"])
    with pytest.raises(InvalidArgument, match="time column 'when' is not in the file"):
        score_upload(store, b, rows, time_column="when")
    bad = rows.assign(when=["2025-01-01", "not a date", "2025-01-02"])
    with pytest.raises(InvalidArgument, match="not times|unreadable"):
        score_upload(store, b, bad, time_column="when")
    with pytest.raises(InvalidArgument, match="empty"):
        score_upload(store, b, rows.iloc[:0], time_column="when")
    missing = rows.drop(columns=["zipcode"]).assign(when=T0)
    with pytest.raises(InvalidInput, match="zipcode"):
        score_upload(store, b, missing, time_column="when")
    assert not store.fs.exists(store.path(".fixative", "scored"))


def test_read_table():
    csv = b"a,b\n1,2\n"
    assert read_table(csv, "x.csv").shape == (1, 2)
    buf = io.BytesIO()
    pd.DataFrame({"a": np.arange(3)}).to_parquet(buf)
    assert len(read_table(buf.getvalue(), "x.parquet")) == 3
    for data, name, message in ((csv, "x.xlsx", "neither CSV nor Parquet"),
                                (b"", "x.csv", "empty"), (b"a,b\n", "x.csv", "no rows"),
                                (b"\x00\x01garbage", "x.parquet", "cannot be read")):
        with pytest.raises(InvalidArgument, match=message):
            read_table(data, name)


def test_truth_column_guess(house_data):
    features = [c for c in house_data.columns if c != "price"]
    data = house_data.head(20).assign(when="2025-03-01", prediction=1.0)
    # the only column that is not an input, the time or a prediction, and holds numbers
    assert truth_column_guess(data, features, exclude=["when"]) == "price"
    # without the time column named, it is still not taken: its values are not numbers
    assert truth_column_guess(data, features) == "price"
    assert truth_column_guess(data.assign(store_id=3), features, exclude=["when"]) is None
    named = data.assign(store_id=3, actual=data["price"])
    assert truth_column_guess(named, features, exclude=["when"]) == "actual"
    assert truth_column_guess(data.drop(columns=["price"]), features, exclude=["when"]) is None
    # a classifier's true value holds its labels
    labels = pd.DataFrame({"x": [1, 2], "churned": ["yes", "no"], "segment": ["a", "b"]})
    assert truth_column_guess(labels, ["x"], classes=["no", "yes"]) == "churned"
    assert truth_column_guess(labels.drop(columns=["churned"]), ["x"], ["no", "yes"]) is None
