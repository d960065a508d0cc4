"""Estimated metrics on a real board: CBPE for a classifier, DLE for a regressor, and
"cannot estimate" with the reason; in thresholds and on the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import store_version, write_log

from core.cli.main import main
from core.model.examples import churn
from core.monitoring import cbpe, thresholds
from core.monitoring.actuals import save_actuals
from core.monitoring.estimate import compare, estimated
from core.monitoring.monitor import open_monitor
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")
DAYS, PER_DAY, LABELLED_DAYS = 8, 200, 4
REF = (T0, T0 + pd.Timedelta(days=LABELLED_DAYS))


@pytest.fixture(scope="module")
def churn_board(churn_model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("est") / "board")
    store = VersionStore(path)
    fresh = churn(DAYS * PER_DAY, seed=7)  # not the training rows
    b = store_version(store, churn_model, fresh, "churned", "churn")
    x = fresh.drop(columns=["churned"])
    ts = [T0 + pd.Timedelta(days=i // PER_DAY, minutes=i % PER_DAY) for i in range(len(x))]
    logged = write_log(store, b, x, ts, request_size=50)
    logged["churned"] = fresh.loc[logged["source_row"], "churned"].to_numpy()
    # actuals only for the first days: the later ones are estimated without them
    first = logged[pd.to_datetime(logged["ts"]) < REF[1]]
    save_actuals(store, "churn", first, key_column="request_id", actual_column="churned",
                 row_column="row", classes=b.meta.classes)
    store.set_alias("churn", "production", b.version)
    return path, b, logged


def test_classifier_windows_are_estimated_with_bands(churn_board):
    path, b, logged = churn_board
    store = VersionStore(path)
    with open_monitor(store, "churn", b.meta, reference=REF) as mon:
        est = estimated(mon, "day", reference=REF)
        realized = mon.metrics("day")
    assert est.attrs["method"] == "cbpe" and est.attrs["reason"] == ""
    assert f"{LABELLED_DAYS * PER_DAY:,} rows with actuals from 2025-03-03" in \
        est.attrs["reference"]
    assert "checked on 800 reference rows" in est.attrs["calibration"]
    assert len(est) == DAYS and (est["n"] == PER_DAY).all()
    for m in cbpe.METRICS:
        assert ((est[f"{m}_lower"] <= est[m]) & (est[m] <= est[f"{m}_upper"])).all(), m
        assert est[m].between(0, 1).all(), m
    # days without actuals have estimates too, and no realized metrics
    assert realized["accuracy"].iloc[LABELLED_DAYS:].isna().all()
    assert est["accuracy"].iloc[LABELLED_DAYS:].notna().all()
    table = compare(realized, est)
    judged = table[table["inside"].notna()]
    assert len(judged) == LABELLED_DAYS * len(cbpe.METRICS)
    assert judged["inside"].astype(bool).mean() >= 0.9


def test_the_estimate_is_the_direct_computation_on_the_logged_probabilities(churn_board):
    """With calibration forced off, a day's estimated accuracy is the mean probability of
    the predicted class over its logged rows."""
    path, b, logged = churn_board
    store = VersionStore(path)
    with open_monitor(store, "churn", b.meta, reference=REF) as mon:
        est = estimated(mon, "day", reference=REF)
    day = logged[pd.to_datetime(logged["ts"]).dt.floor("D") == T0 + pd.Timedelta(days=6)]
    proba = np.vstack(day["proba"].to_numpy())
    pred = day["prediction"].map({c: i for i, c in enumerate(b.meta.classes)}).to_numpy()
    ref = logged[pd.to_datetime(logged["ts"]) < REF[1]]
    cal = cbpe.fit_calibration(np.vstack(ref["proba"].to_numpy()),
                               ref["churned"].map({"no": 0, "yes": 1}).to_numpy(),
                               b.meta.classes)
    direct = cal.apply(proba)[np.arange(len(pred)), pred].mean()
    if cal.method == "none":
        assert direct == pytest.approx(proba.max(axis=1).mean())
    assert est["accuracy"].iloc[6] == pytest.approx(direct, rel=1e-9)


def test_a_rule_on_an_estimated_metric_marks_windows(churn_board):
    path, b, _ = churn_board
    store = VersionStore(path)
    settings = thresholds.Settings(window="day", rules=[
        thresholds.Rule("estimated:accuracy", warning=0.99, direction="below")])
    with open_monitor(store, "churn", b.meta, reference=REF) as mon:
        est = estimated(mon, "day", reference=REF)
    marks = thresholds.evaluate(settings, estimated=est)
    assert set(marks["metric"]) == {"estimated:accuracy"}
    assert (marks["status"] == "warning").all() and (marks["n"] == PER_DAY).all()
    assert thresholds.uses_estimates(settings)
    # a minimum above the window's rows: no verdict
    strict = thresholds.Settings(window="day", rules=settings.rules, min_rows=PER_DAY + 1)
    assert (thresholds.evaluate(strict, estimated=est)["status"] == "none").all()


def test_cli_prints_estimates_as_json_and_says_when_it_cannot(churn_board, capsys):
    path, *_ = churn_board
    assert main(["monitor", "churn:production", "--window", "day", "--what", "estimated",
                 "--format", "json", "--reference", "2025-03-03..2025-03-07",
                 "--store", path]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["estimation"]["method"] == "cbpe"
    assert len(out["estimated"]) == DAYS and out["estimated"][7]["accuracy"] is not None
    assert main(["monitor", "churn", "--window", "day", "--what", "estimated",
                 "--since", "2025-03-09", "--store", path]) == 0
    text = capsys.readouterr().out
    # the range holds no actuals and no reference period was named
    assert "cannot estimate: the reference has 0 rows with actuals" in text
    assert main(["monitor", "churn", "--window", "day", "--what", "estimated",
                 "--format", "csv", "--reference", "2025-03-03..2025-03-07",
                 "--store", path]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0].startswith("window_start,window_end,n,accuracy,accuracy_lower")
    assert len(csv) == DAYS + 1


def test_without_logged_probabilities_nothing_is_estimated(tmp_path, churn_data, churn_model):
    store = VersionStore(str(tmp_path / "board"))
    b = store_version(store, churn_model, churn_data, "churned", "churn")
    x = churn_data.drop(columns=["churned"]).iloc[:200]
    write_log(store, b, x, [T0 + pd.Timedelta(minutes=i) for i in range(200)], proba=False,
              request_size=20)
    with open_monitor(store, "churn", b.meta) as mon:
        est = estimated(mon, "day")
    assert est.empty and est.attrs["method"] == "none"
    assert "logs no probabilities" in est.attrs["reason"]


def test_regressor_error_is_estimated_from_a_reference_with_actuals(tmp_path, house_data,
                                                                    house_model):
    store = VersionStore(str(tmp_path / "board"))
    b = store_version(store, house_model, house_data, "price", "house")
    rows = house_data.iloc[:1200].reset_index(drop=True)
    ts = [T0 + pd.Timedelta(days=i // 300, minutes=i % 300) for i in range(len(rows))]
    logged = write_log(store, b, rows.drop(columns=["price"]), ts, request_size=100)
    with open_monitor(store, "house", b.meta) as mon:
        none = estimated(mon, "day")
    assert none.empty and "cannot estimate: the reference has 0 rows with actuals" in \
        none.attrs["reason"]
    logged["price"] = rows.loc[logged["source_row"], "price"].to_numpy()
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    ref = (T0, T0 + pd.Timedelta(days=2))
    with open_monitor(store, "house", b.meta, reference=ref) as mon:
        est = estimated(mon, "day", reference=ref)
        realized = mon.metrics("day")
    assert est.attrs["method"] == "dle" and "direct loss estimation" in est.attrs["calibration"]
    assert list(est.columns[3:9]) == ["mae", "mae_lower", "mae_upper", "rmse", "rmse_lower",
                                      "rmse_upper"]
    # the estimated error is of the size of the realized one (same population)
    ratio = est["mae"] / realized["mae"]
    assert ratio.between(0.6, 1.6).all(), ratio.tolist()
    assert (est["mae_lower"] < est["mae"]).all() and (est["mae"] < est["mae_upper"]).all()


def test_the_card_shows_production_metrics_handed_to_it(churn_board, tmp_path, capsys):
    path, b, _ = churn_board
    out = tmp_path / "card.html"
    assert main(["card", "churn:production", "--production", "day", "--out", str(out),
                 "--store", path]) == 0
    html = out.read_text()
    assert "In production: per day, realized where actuals are in and estimated" in html
    assert "roc_auc" in html and "2025-03-10 00:00" in html
    assert main(["card", "churn:production", "--production", "fortnight", "--out",
                 str(tmp_path / "x.html"), "--store", path]) == 1
    assert "Unknown window 'fortnight'" in capsys.readouterr().err


def test_the_status_judges_estimates_against_the_rows_with_actuals_before_it(churn_board):
    """The last three days have no actuals: the status rests on their estimates, learnt
    from the days before them."""
    path, b, _ = churn_board
    store = VersionStore(path)
    before = thresholds.load(store, "churn")
    try:
        thresholds.save(store, "churn", thresholds.Settings(window="day", rules=[
            thresholds.Rule("estimated:accuracy", warning=0.99, direction="below")]))
        (s,) = thresholds.status(store, "churn", now=T0 + pd.Timedelta(days=DAYS))
    finally:
        thresholds.save(store, "churn", before)
    assert s.status == "warning" and s.metric == "estimated:accuracy"
    assert s.warning == 0.99 and 0.5 < s.value < 0.99 and s.n == PER_DAY
