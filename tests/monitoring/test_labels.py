"""The log joined to its actuals once per upload (monitoring.labels): metrics read it only while
it gives exactly the rows the live join gives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from monitor_helpers import store_version, write_log
from sklearn import metrics as skm
from store_fixtures import s3_env, s3_server, s3_store  # noqa: F401

from core.monitoring.actuals import save_actuals
from core.monitoring.labels import MANIFEST, read_manifest, refresh_labels
from core.monitoring.monitor import open_monitor
from core.store.paths import actuals_dir, labels_dir
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")
DAY = pd.Timedelta(days=1)


def _log_days(store, b, data, days, seed=0):
    """Log 40 rows per day (requests of 2 rows); returns the logged rows with price."""
    out = []
    for d in days:
        rows = data.iloc[40 * d:40 * d + 40].reset_index(drop=True)
        ts = [T0 + d * DAY + pd.Timedelta(minutes=i) for i in range(len(rows))]
        logged = write_log(store, b, rows.drop(columns=["price"]), ts, request_size=2, seed=seed)
        logged["price"] = rows.loc[logged["source_row"], "price"].to_numpy()
        out.append(logged)
    return pd.concat(out, ignore_index=True)


def _expected(frame):
    y, p = frame["price"].to_numpy(), frame["prediction"].to_numpy(dtype=float)
    return skm.root_mean_squared_error(y, p), skm.r2_score(y, p)


@pytest.fixture()
def house(tmp_path, house_data, house_model):
    store = VersionStore(str(tmp_path / "board"))
    b = store_version(store, house_model, house_data, "price", "house")
    return store, b, house_data


def _metrics(store, b, **kw):
    with open_monitor(store, "house", b.meta, **kw) as mon:
        return mon.labelled, mon.metrics("day")


def _regstats(store, b, **kw):
    with open_monitor(store, "house", b.meta, **kw) as mon:
        return mon.regstats


def test_upload_materialises_the_join_and_metrics_match_sklearn(house):
    store, b, data = house
    logged = _log_days(store, b, data, [0, 1])
    truth = logged.iloc[::2]
    saved = save_actuals(store, "house", truth, key_column="request_id", actual_column="price",
                         row_column="row")
    assert saved.labels is not None and saved.labels.rows == len(truth)
    manifest = read_manifest(store, "house")
    assert manifest["rows"] == len(truth) and len(manifest["segments"]) == 2
    how, m = _metrics(store, b)
    assert how == "materialised" and _regstats(store, b)
    for row, (_, g) in zip(m.itertuples(), truth.groupby(truth["ts"].dt.floor("D"))):
        rmse, r2 = _expected(g)
        assert row.n_actual == len(g) and row.n == 40
        assert row.rmse == pytest.approx(rmse, rel=1e-9) and row.r2 == pytest.approx(r2, rel=1e-9)
    # The same figures as the live join, which is used when there is no manifest.
    store.fs.rm(f"{labels_dir(store, 'house')}/{MANIFEST}")
    how, live = _metrics(store, b)
    assert how == "join" and not _regstats(store, b)
    pd.testing.assert_frame_equal(m, live, check_exact=False, rtol=1e-12)


def test_segments_logged_after_the_upload_are_joined_live(house):
    store, b, data = house
    first = _log_days(store, b, data, [0])
    save_actuals(store, "house", first, key_column="request_id", actual_column="price",
                 row_column="row")
    later = _log_days(store, b, data, [1, 2], seed=1)
    # Actuals for the later rows exist only once uploaded; before that day 1 and 2 have none.
    how, m = _metrics(store, b)
    assert how == "materialised+2" and _regstats(store, b)
    assert list(m["n_actual"]) == [40, 0, 0] and list(m["n"]) == [40, 40, 40]
    save_actuals(store, "house", later, key_column="request_id", actual_column="price",
                 row_column="row")
    how, m = _metrics(store, b)
    assert how == "materialised" and list(m["n_actual"]) == [40, 40, 40]
    assert m["rmse"].iloc[2] == pytest.approx(_expected(later.iloc[40:])[0], rel=1e-9)


def test_a_later_upload_replaces_earlier_values_in_the_materialised_rows(house):
    store, b, data = house
    logged = _log_days(store, b, data, [0])
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    fixed = logged.iloc[:4].assign(price=[1.0, 2.0, 3.0, 4.0])
    save_actuals(store, "house", fixed, key_column="request_id", actual_column="price",
                 row_column="row")
    expect = logged.copy()
    expect.loc[:3, "price"] = [1.0, 2.0, 3.0, 4.0]
    how, m = _metrics(store, b)
    assert how == "materialised"
    assert m["rmse"].iloc[0] == pytest.approx(_expected(expect)[0], rel=1e-9)
    # Only the current materialisation and the one before it are kept.
    files = [f.rsplit("/", 1)[-1] for f in store.fs.ls(labels_dir(store, "house"),
                                                        detail=False)]
    assert len([f for f in files if f.startswith("labels-")]) == 2
    assert len([f for f in files if f.startswith("counts-")]) == 2


def test_actuals_written_behind_its_back_make_the_join_live_again(house):
    store, b, data = house
    logged = _log_days(store, b, data, [0])
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    # A file of actuals the manifest does not list (copied in by hand): correct a value.
    folder = f"{actuals_dir(store, 'house', 'request_id')}"
    table = pa.table({"key": pa.array([logged["request_id"].iloc[0]]),
                      "row": pa.array([0], pa.int32()), "actual": pa.array([5.0]),
                      "uploaded_at": pa.array([pd.Timestamp("2099-01-01", tz="UTC")],
                                              pa.timestamp("us", tz="UTC"))})
    pq.write_table(table, f"{folder}/zz-by-hand.parquet")
    expect = logged.copy()
    expect.loc[0, "price"] = 5.0
    how, m = _metrics(store, b)
    assert how == "join"
    assert m["rmse"].iloc[0] == pytest.approx(_expected(expect)[0], rel=1e-9)
    refresh_labels(store, "house", numeric=True)
    how, again = _metrics(store, b)
    assert how == "materialised"
    pd.testing.assert_frame_equal(m, again)


def test_deleted_segments_and_filters_leave_their_rows_out(house):
    store, b, data = house
    logged = _log_days(store, b, data, [0, 1, 2])
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    how, m = _metrics(store, b, since=T0 + DAY, until=T0 + 2 * DAY)
    assert how == "materialised" and list(m["n_actual"]) == [40]
    how, m = _metrics(store, b, versions=["20990101T000000Z-zzzzz"])
    assert m.empty
    day1 = [f for f in store.fs.glob(store.path(".fixative", "logs", "house", "*", "*",
                                                "*.parquet")) if "2025-03-04" in f]
    store.fs.rm(day1[0])
    how, m = _metrics(store, b)
    assert how == "materialised"
    assert list(m["n_actual"]) == [40, 0, 40] and list(m["n"]) == [40, 0, 40]


def test_bounds_inside_a_minute_count_rows_not_minutes(house):
    store, b, data = house
    logged = _log_days(store, b, data, [0, 1])
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    # Requests of 2 rows every 2 minutes: 30 s after midnight leaves out the first one.
    since = T0 + DAY + pd.Timedelta(seconds=30)
    until = T0 + DAY + pd.Timedelta(minutes=38, seconds=1)
    how, m = _metrics(store, b, since=since, until=until)
    assert how == "materialised" and not _regstats(store, b, since=since, until=until)
    assert list(m["n"]) == [38] and list(m["n_actual"]) == [38]
    day = logged[(logged["ts"] >= since) & (logged["ts"] < until)]
    assert m["rmse"].iloc[0] == pytest.approx(_expected(day)[0], rel=1e-9)
    since, until = T0 + DAY + pd.Timedelta(minutes=2), T0 + DAY + pd.Timedelta(minutes=38)
    how, m = _metrics(store, b, since=since, until=until)
    assert _regstats(store, b, since=since, until=until)
    assert list(m["n"]) == [36] and list(m["n_actual"]) == [36]
    day = logged[(logged["ts"] >= since) & (logged["ts"] < until)]
    rmse, r2 = _expected(day)
    assert m["rmse"].iloc[0] == pytest.approx(rmse, rel=1e-9)
    assert m["r2"].iloc[0] == pytest.approx(r2, rel=1e-9)


def test_a_broken_manifest_falls_back_to_the_live_join(house):
    store, b, data = house
    logged = _log_days(store, b, data, [0])
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    path = f"{labels_dir(store, 'house')}/{MANIFEST}"
    for text in ("{not json", json.dumps(["a list"]), json.dumps({"file": "x.parquet"})):
        with store.fs.open(path, "wb") as f:
            f.write(text.encode())
        how, m = _metrics(store, b)
        assert how == "join" and m["n_actual"].iloc[0] == 40
    # A manifest made for labels (a classifier) is not used for numbers.
    refresh_labels(store, "house", numeric=False)
    how, _ = _metrics(store, b)
    assert how == "join"


def test_no_actuals_or_no_log_means_nothing_materialised(house):
    store, b, data = house
    assert refresh_labels(store, "house", numeric=True) is None
    truth = pd.DataFrame({"rid": ["nobody"], "y": [1.0]})
    saved = save_actuals(store, "house", truth, key_column="rid", actual_column="y")
    assert saved.labels is None and read_manifest(store, "house") is None
    _log_days(store, b, data, [0])
    how, m = _metrics(store, b)
    assert how == "join" and m["n_actual"].iloc[0] == 0


def test_classifier_metrics_from_materialised_labels(tmp_path, churn_data, churn_model):
    store = VersionStore(str(tmp_path / "board"))
    b = store_version(store, churn_model, churn_data, "churned", "churn")
    rows = churn_data.iloc[:240].reset_index(drop=True)
    ts = [T0 + pd.Timedelta(minutes=20 * i) for i in range(len(rows))]
    logged = write_log(store, b, rows.drop(columns=["churned"]), ts, request_size=3)
    logged["churned"] = rows.loc[logged["source_row"], "churned"].to_numpy()
    save_actuals(store, "churn", logged.iloc[::2], key_column="request_id",
                 actual_column="churned", row_column="row", classes=b.meta.classes)
    with open_monitor(store, "churn", b.meta) as mon:
        assert mon.labelled == "materialised"
        m = mon.metrics("day")
    g = logged.iloc[::2]
    g = g[g["ts"].dt.floor("D") == T0]
    y, p = g["churned"], g["prediction"]
    pos = b.meta.classes[1]
    P = np.vstack(g["proba"].to_numpy())
    assert m["n_actual"].iloc[0] == len(g)
    assert m["accuracy"].iloc[0] == pytest.approx(skm.accuracy_score(y, p))
    assert m["f1"].iloc[0] == pytest.approx(skm.f1_score(y, p, pos_label=pos))
    assert m["roc_auc"].iloc[0] == pytest.approx(skm.roc_auc_score(y == pos, P[:, 1]), rel=1e-9)
    assert m["log_loss"].iloc[0] == pytest.approx(skm.log_loss(y, P, labels=b.meta.classes),
                                                  rel=1e-9)
    store.fs.rm(f"{labels_dir(store, 'churn')}/{MANIFEST}")
    with open_monitor(store, "churn", b.meta) as mon:
        assert mon.labelled == "join"
        pd.testing.assert_frame_equal(m, mon.metrics("day"))


@pytest.mark.s3
def test_materialised_labels_on_s3(s3_store, house_data, house_model):  # noqa: F811
    store = s3_store
    b = store_version(store, house_model, house_data, "price", "house")
    logged = _log_days(store, b, house_data, [0, 1])
    saved = save_actuals(store, "house", logged.iloc[::2], key_column="request_id",
                         actual_column="price", row_column="row")
    assert saved.labels is not None and saved.labels.rows == 40
    _log_days(store, b, house_data, [2], seed=1)
    how, m = _metrics(store, b)
    assert how == "materialised+1"
    assert list(m["n"]) == [40, 40, 40] and list(m["n_actual"]) == [20, 20, 0]
    store.fs.rm(f"{labels_dir(store, 'house')}/{MANIFEST}")
    how, live = _metrics(store, b)
    assert how == "join"
    pd.testing.assert_frame_equal(m, live)


def test_per_minute_sums_keep_the_variance_exact_far_from_zero(house):
    """R² needs the variance of the actuals; summing squares would lose it near 1e9."""
    store, b, data = house
    logged = _log_days(store, b, data, [0])
    logged["price"] = 1e9 + logged["price"] / 1000
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    assert _regstats(store, b)
    _, m = _metrics(store, b)
    rmse, r2 = _expected(logged)
    assert m["rmse"].iloc[0] == pytest.approx(rmse, rel=1e-9)
    assert m["r2"].iloc[0] == pytest.approx(r2, rel=1e-9)


def test_every_window_reads_sums_that_fit_it(house):
    """Day sums for day/week/month windows, hour sums for hours, minute sums for 15min
    and for bounds inside an hour: each equals the live join's figures."""
    from core.monitoring.labels import rollup_level
    from core.monitoring.windows import parse_window

    store, b, data = house
    logged = _log_days(store, b, data, [0, 1, 2])
    save_actuals(store, "house", logged.iloc[::3], key_column="request_id",
                 actual_column="price", row_column="row")
    windows = ["15min", "hour", "day", "week", "month", "3d", "90min"]
    bounds = [(None, None), (T0 + pd.Timedelta(minutes=20), T0 + 2 * DAY)]
    assert [rollup_level(parse_window(w), None, None) for w in windows] == [
        1, 60, 1440, 1440, 1440, 1440, 1]
    assert rollup_level(parse_window("day"), *bounds[1]) == 1
    got = {}
    for since, until in bounds:
        with open_monitor(store, "house", b.meta, since=since, until=until) as mon:
            assert mon.regstats
            got[since] = [mon.metrics(w) for w in windows]
    store.fs.rm(f"{labels_dir(store, 'house')}/{MANIFEST}")
    for since, until in bounds:
        with open_monitor(store, "house", b.meta, since=since, until=until) as mon:
            assert mon.labelled == "join"
            for frame, w in zip(got[since], windows):
                live = mon.metrics(w)
                assert live["n"].sum() > 0
                pd.testing.assert_frame_equal(frame, live, check_exact=False, rtol=1e-12)
