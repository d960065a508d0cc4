"""Evaluation results from monitoring, checked against scikit-learn on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import write_log
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    precision_score,
    r2_score,
    recall_score,
    root_mean_squared_error,
)

from core import bundle
from core.errors import InvalidArgument
from core.monitoring.actuals import save_actuals
from core.monitoring.evaluation import evaluate
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture(scope="module")
def house(tmp_path_factory, house_model, house_data):
    store = VersionStore(str(tmp_path_factory.mktemp("eval") / "board"))
    b = bundle(house_model, house_data.drop(columns="price"), name="house")
    store.write(b)
    rows = house_data.head(90)
    ts = T0 + pd.to_timedelta(np.arange(len(rows)) * 900, unit="s")
    logged = write_log(store, b, rows.drop(columns=["price"]), ts, request_size=3, failed=[4])
    logged["price"] = rows.loc[logged["source_row"], "price"].to_numpy()
    with_actual = logged.iloc[[i for i in range(len(logged)) if i % 4]]
    save_actuals(store, "house", with_actual, key_column="request_id", actual_column="price",
                 row_column="row")
    return store, b, logged, with_actual


def test_overall_and_per_segment_match_sklearn(house):
    store, b, logged, with_actual = house
    results = evaluate(store, "house", b.version, segment="zipcode")
    overall, *levels = results
    y, p = with_actual["price"], with_actual["prediction"]
    assert overall["rows"] == len(with_actual) and overall["predictions"] == len(logged)
    assert overall["segment"] is None
    assert overall["metrics"]["rmse"] == pytest.approx(root_mean_squared_error(y, p))
    assert overall["metrics"]["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert overall["metrics"]["r2"] == pytest.approx(r2_score(y, p))
    assert overall["period"][0] == with_actual["ts"].min().isoformat()
    by_zip = {g: frame for g, frame in with_actual.groupby("zipcode")}
    assert {r["segment"][1] for r in levels} == set(by_zip)
    assert [r["rows"] for r in levels] == sorted((len(f) for f in by_zip.values()),
                                                 reverse=True)
    for r in levels:
        frame = by_zip[r["segment"][1]]
        assert r["rows"] == len(frame)
        assert r["metrics"]["rmse"] == pytest.approx(
            root_mean_squared_error(frame["price"], frame["prediction"]))


def test_levels_past_the_limit_are_counted_not_listed(house):
    store, b, _, with_actual = house
    overall, *levels = evaluate(store, "house", b.version, segment="sqft_living", max_levels=3)
    assert len(levels) == 3
    assert "more levels of sqft_living" in overall["note"]


def test_segment_must_be_an_input(house):
    store, b, _, _ = house
    for bad in ("price", "x'; DROP TABLE monitoring; --", "\"zipcode\"", "z" * 10_000):
        with pytest.raises(InvalidArgument, match="is not an input of house"):
            evaluate(store, "house", b.version, segment=bad)


def test_no_actuals_no_results(tmp_path, house_model, house_data):
    store = VersionStore(str(tmp_path / "board"))
    b = bundle(house_model, house_data.drop(columns="price"), name="house")
    store.write(b)
    assert evaluate(store, "house", b.version) == []
    write_log(store, b, house_data.drop(columns="price").head(6), [T0] * 6)
    assert evaluate(store, "house", b.version) == []


def test_binary_classifier_matches_sklearn(tmp_path, churn_model, churn_data):
    store = VersionStore(str(tmp_path / "board"))
    b = bundle(churn_model, churn_data.drop(columns="churned"), name="churn")
    store.write(b)
    rows = churn_data.head(120)
    ts = T0 + pd.to_timedelta(np.arange(len(rows)) * 600, unit="s")
    logged = write_log(store, b, rows.drop(columns=["churned"]), ts, request_size=4)
    logged["churned"] = rows["churned"].to_numpy()
    save_actuals(store, "churn", logged, key_column="request_id", actual_column="churned",
                 row_column="row", classes=b.meta.classes)
    overall, *plans = evaluate(store, "churn", b.version, segment="plan")
    y, p = logged["churned"], logged["prediction"]
    pos = b.meta.classes[1]
    assert overall["metrics"]["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert overall["metrics"]["precision"] == pytest.approx(precision_score(y, p, pos_label=pos))
    assert overall["metrics"]["recall"] == pytest.approx(recall_score(y, p, pos_label=pos))
    assert overall["metrics"]["f1"] == pytest.approx(f1_score(y, p, pos_label=pos))
    assert sum(r["rows"] for r in plans) == overall["rows"] == len(logged)
