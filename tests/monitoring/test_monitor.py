"""Windowed metrics over real log segments, checked against scikit-learn on the same rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import store_version, write_log
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from core.errors import InvalidArgument
from core.monitoring.actuals import save_actuals, score_upload
from core.monitoring.monitor import open_monitor, open_ref
from core.monitoring.windows import MAX_WINDOWS
from core.store.versionstore import VersionStore

DAY = pd.Timedelta(days=1)
T0 = pd.Timestamp("2025-03-03", tz="UTC")  # a Monday


@pytest.fixture()
def store(tmp_path):
    return VersionStore(str(tmp_path / "board"))


@pytest.fixture(scope="module")
def house(house_data, house_model, tmp_path_factory):
    """A store with the house model and 3 days of logged traffic, actuals for 2/3 of rows."""
    store = VersionStore(str(tmp_path_factory.mktemp("house") / "board"))
    b = store_version(store, house_model, house_data, "price", "house")
    rows = house_data.iloc[:240].reset_index(drop=True)
    rng = np.random.default_rng(3)
    ts = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 3 * 86400, len(rows))), unit="s")
    logged = write_log(store, b, rows.drop(columns=["price"]), ts, request_size=2, failed=[7])
    logged["price"] = rows.loc[logged["source_row"], "price"].to_numpy()
    with_actual = logged.iloc[[i for i in range(len(logged)) if i % 3]]
    save_actuals(store, "house", with_actual, key_column="request_id", actual_column="price",
                 row_column="row")
    return store, b, logged, with_actual


def _by_day(frame: pd.DataFrame) -> dict[pd.Timestamp, pd.DataFrame]:
    day = frame["ts"].dt.floor("D")
    return {k: g for k, g in frame.groupby(day)}


def test_regression_metrics_match_sklearn(house):
    store, b, logged, with_actual = house
    with open_monitor(store, "house", b.meta) as mon:
        m = mon.metrics("day")
    assert list(m["window_start"]) == [T0, T0 + DAY, T0 + 2 * DAY]
    assert m["n"].sum() == len(logged)
    groups = _by_day(with_actual)
    for row in m.itertuples():
        g = groups[row.window_start]
        y, p = g["price"].to_numpy(), g["prediction"].to_numpy(dtype=float)
        assert row.n_actual == len(g)
        assert row.rmse == pytest.approx(skm.root_mean_squared_error(y, p), rel=1e-9)
        assert row.mae == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-9)
        assert row.mape == pytest.approx(skm.mean_absolute_percentage_error(y, p), rel=1e-9)
        assert row.r2 == pytest.approx(skm.r2_score(y, p), rel=1e-9)
        assert row.note == ""


def test_failed_requests_count_in_traffic_not_in_n(house):
    store, b, logged, _ = house
    with open_monitor(store, "house", b.meta) as mon:
        traffic = mon.traffic("day")
        m = mon.metrics("day")
    assert traffic["errors"].sum() == 1
    assert traffic["requests"].sum() == logged["request_id"].nunique() + 1
    assert traffic["rows"].sum() == m["n"].sum() == len(logged)
    first = logged.groupby("request_id").first()
    for row in traffic.itertuples():
        day = first[first["ts"].dt.floor("D") == row.window_start]["latency_ms"]
        # The failed request's latency is in the log too, so compare loosely on p50.
        assert row.p50_ms == pytest.approx(np.quantile(day, 0.5), rel=0.25)


def test_by_version_and_version_filter(house, house_data, house_model):
    store, b, logged, _ = house
    with open_monitor(store, "house", b.meta, versions=[b.version]) as mon:
        m = mon.metrics("week", by_version=True)
    assert set(m["version"]) == {b.version}
    with open_monitor(store, "house", b.meta, versions=["20990101T000000Z-zzzzz"]) as mon:
        assert mon.metrics("week").empty


def test_open_ref_resolves_alias_and_rejects_nonsense(house):
    store, b, logged, _ = house
    store.set_alias("house", "production", b.version)
    with open_ref(store, "house:production") as mon:
        assert mon.versions == [b.version]
        assert mon.metrics("week")["n"].sum() == len(logged)
    with pytest.raises(InvalidArgument, match="Name a model"):
        open_ref(store, "  ")
    with pytest.raises(Exception, match="(?i)not found|no model|unknown"):
        open_ref(store, "nosuchmodel")


# -- classification -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def churn(churn_data, churn_model, tmp_path_factory):
    store = VersionStore(str(tmp_path_factory.mktemp("churn") / "board"))
    b = store_version(store, churn_model, churn_data, "churned", "churn")
    rows = churn_data.iloc[:400].reset_index(drop=True)
    ts = T0 + pd.to_timedelta(np.arange(len(rows)) * 600, unit="s")  # ~2.8 days
    logged = write_log(store, b, rows.drop(columns=["churned"]), ts, request_size=4)
    logged["churned"] = rows["churned"].to_numpy()
    save_actuals(store, "churn", logged, key_column="request_id", actual_column="churned",
                 row_column="row", classes=b.meta.classes)
    return store, b, logged


def test_binary_metrics_match_sklearn(churn):
    store, b, logged = churn
    pos = b.meta.classes[1]
    with open_monitor(store, "churn", b.meta) as mon:
        m = mon.metrics("day")
    for row in m.itertuples():
        g = _by_day(logged)[row.window_start]
        y, p = g["churned"], g["prediction"]
        P = np.vstack(g["proba"].to_numpy())
        assert row.accuracy == pytest.approx(skm.accuracy_score(y, p))
        assert row.precision == pytest.approx(skm.precision_score(y, p, pos_label=pos))
        assert row.recall == pytest.approx(skm.recall_score(y, p, pos_label=pos))
        assert row.f1 == pytest.approx(skm.f1_score(y, p, pos_label=pos))
        assert row.roc_auc == pytest.approx(skm.roc_auc_score(y == pos, P[:, 1]), rel=1e-9)
        assert row.log_loss == pytest.approx(skm.log_loss(y, P, labels=b.meta.classes),
                                             rel=1e-9)


def test_multiclass_macro_metrics_match_sklearn(store):
    rng = np.random.default_rng(5)
    n = 600
    x = rng.normal(size=(n, 3))
    label = np.array(["a", "b", "c"])[np.argmax(x @ rng.normal(size=(3, 3))
                                                + rng.normal(0, 0.8, (n, 3)), axis=1)]
    frame = pd.DataFrame(x, columns=["f1", "f2", "f3"])
    model = LogisticRegression(max_iter=300).fit(frame, label)
    data = frame.assign(label=label)
    b = store_version(store, model, data, "label", "tri")
    ts = T0 + pd.to_timedelta(np.arange(n) * 300, unit="s")
    logged = write_log(store, b, frame, ts, request_size=4)
    logged["label"] = label
    save_actuals(store, "tri", logged, key_column="request_id", actual_column="label",
                 row_column="row", classes=b.meta.classes)
    with open_monitor(store, "tri", b.meta) as mon:
        m = mon.metrics("day")
    for row in m.itertuples():
        g = _by_day(logged)[row.window_start]
        y, p = g["label"], g["prediction"]
        P = np.vstack(g["proba"].to_numpy())
        assert row.accuracy == pytest.approx(skm.accuracy_score(y, p))
        for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                         ("f1", skm.f1_score)):
            assert getattr(row, name) == pytest.approx(fn(y, p, average="macro",
                                                          zero_division=0))
        assert row.roc_auc == pytest.approx(skm.roc_auc_score(
            y, P, multi_class="ovr", average="macro", labels=b.meta.classes), rel=1e-9)
        assert row.log_loss == pytest.approx(skm.log_loss(y, P, labels=b.meta.classes))


def test_one_class_window_has_null_auc_with_reason(churn, churn_data):
    store, b, logged = churn
    neg = b.meta.classes[0]
    rows = churn_data[churn_data["churned"] == neg].iloc[:5].drop(columns=["churned"])
    data = rows.assign(when=T0 + pd.Timedelta(days=30), truth=neg)
    score_upload(store, b, data, time_column="when", actual_column="truth")
    with open_monitor(store, "churn", b.meta, source="upload") as mon:
        m = mon.metrics("day")
    assert len(m) == 1 and m["n"].iloc[0] == 5 and m["n_actual"].iloc[0] == 5
    assert np.isnan(m["roc_auc"].iloc[0]) and np.isnan(m["recall"].iloc[0])
    assert "both classes" in m["note"].iloc[0] and "no actual is 'yes'" in m["note"].iloc[0]
    assert m["log_loss"].iloc[0] > 0 and 0 <= m["accuracy"].iloc[0] <= 1


# -- windows: the cases vetiver's compute_metrics gets wrong ----------------------------------

def _upload(store, b, frame, times, truth=None):
    data = frame.copy()
    data["when"] = times
    if truth is not None:
        data["truth"] = truth
    return score_upload(store, b, data, time_column="when",
                        actual_column="truth" if truth is not None else None)


@pytest.fixture()
def small_house(store, house_data, house_model):
    b = store_version(store, house_model, house_data, "price", "house")
    return store, b, house_data.drop(columns=["price"]), house_data["price"]


def test_a_scored_upload_spanning_many_days_counts_its_rows_in_every_day(small_house):
    store, b, x, _ = small_house
    n = 96  # hourly rows over four days, scored in one upload
    times = [T0 + pd.Timedelta(hours=h) for h in range(n)]
    _upload(store, b, x.iloc[:n], times)
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        traffic = mon.traffic("day")
    assert list(traffic["window_start"]) == [T0 + i * DAY for i in range(4)]
    assert list(traffic["rows"]) == [24, 24, 24, 24]
    assert traffic["requests"].sum() == 1  # one upload, counted where it starts
    assert traffic["errors"].sum() == 0


def test_timestamp_on_boundary_belongs_to_the_window_it_starts(small_house):
    store, b, x, y = small_house
    times = [T0 + pd.Timedelta(hours=23, minutes=59), T0 + DAY, T0 + DAY]
    _upload(store, b, x.iloc[:3], times, y.iloc[:3])
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        m = mon.metrics("day")
    assert list(m["n"]) == [1, 2]
    assert list(m["window_start"]) == [T0, T0 + DAY]
    assert m["window_end"].iloc[0] == T0 + DAY


def test_gaps_longer_than_the_window_show_empty_windows(small_house):
    store, b, x, y = small_house
    _upload(store, b, x.iloc[:4], [T0, T0, T0 + 4 * DAY, T0 + 4 * DAY], y.iloc[:4])
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        m = mon.metrics("day")
    assert list(m["n"]) == [2, 0, 0, 0, 2]
    assert m["note"].iloc[1] == "no predictions in this window"
    assert m["rmse"].iloc[1:4].isna().all() and m["rmse"].iloc[[0, 4]].notna().all()


def test_all_rows_at_one_timestamp_form_one_window(small_house):
    store, b, x, y = small_house
    _upload(store, b, x.iloc[:50], [T0 + pd.Timedelta(hours=5)] * 50, y.iloc[:50])
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        for window in ("hour", "day", "week", "month", "15min"):
            m = mon.metrics(window)
            assert len(m) == 1 and m["n"].iloc[0] == 50 and m["n_actual"].iloc[0] == 50


def test_string_dates_and_time_zones_are_converted_to_utc(small_house):
    store, b, x, y = small_house
    times = ["2025-03-03 10:00", "2025-03-04T01:30:00+02:00", "2025-03-04T01:30:00Z",
             "2025-03-03T23:59:59-05:00"]
    _upload(store, b, x.iloc[:4], times, y.iloc[:4])
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        m = mon.metrics("day")
        ts = mon.query("SELECT ts FROM monitoring ORDER BY ts")["ts"]
    # 01:30+02:00 is 23:30 UTC on the 3rd; 23:59:59-05:00 is 04:59:59 UTC on the 4th.
    assert list(m["n"]) == [2, 2]
    assert ts.iloc[1] == pd.Timestamp("2025-03-03T23:30:00Z")


def test_windows_with_too_few_rows_give_null_and_a_reason(small_house):
    store, b, x, y = small_house
    _upload(store, b, x.iloc[:3], [T0, T0 + DAY, T0 + DAY], y.iloc[:3])
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        m = mon.metrics("day")
        strict = mon.metrics("day", min_rows=2)
    assert np.isnan(m["r2"].iloc[0]) and m["rmse"].iloc[0] >= 0
    assert "at least 2" in m["note"].iloc[0]
    assert np.isnan(strict["rmse"].iloc[0]) and "need 2" in strict["note"].iloc[0]
    assert strict["rmse"].iloc[1] >= 0


def test_constant_actuals_make_r2_null_not_a_crash(small_house):
    store, b, x, _ = small_house
    _upload(store, b, x.iloc[:5], [T0] * 5, [300_000.0] * 5)
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        m = mon.metrics("day")
    assert np.isnan(m["r2"].iloc[0]) and "constant" in m["note"].iloc[0]


def test_since_until_bound_the_windows_even_without_data(small_house):
    store, b, x, y = small_house
    _upload(store, b, x.iloc[:2], [T0 + DAY, T0 + DAY], y.iloc[:2])
    with open_monitor(store, "house", b.meta, source="upload", since=T0,
                      until=T0 + 3 * DAY) as mon:
        m = mon.metrics("day")
    assert list(m["n"]) == [0, 2, 0]


def test_no_data_gives_an_empty_frame(store, house_data, house_model):
    b = store_version(store, house_model, house_data, "price", "house")
    with open_monitor(store, "house", b.meta) as mon:
        assert mon.metrics("week").empty
        assert mon.traffic("day").empty
        assert mon.drift("week").empty


def test_month_and_week_windows_are_calendar_aligned(small_house):
    store, b, x, y = small_house
    times = ["2025-01-31T23:00Z", "2025-02-01T00:00Z", "2025-03-02T12:00Z", "2025-03-03T00:00Z"]
    _upload(store, b, x.iloc[:4], times, y.iloc[:4])
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        months = mon.metrics("month")
        weeks = mon.metrics("week")
    assert [t.strftime("%Y-%m-%d") for t in months["window_start"]] == [
        "2025-01-01", "2025-02-01", "2025-03-01"]
    assert list(months["n"]) == [1, 1, 2]
    assert all(t.dayofweek == 0 for t in weeks["window_start"])
    assert weeks["n"].iloc[-1] == 1  # 2025-03-03 is a Monday: a new week


# -- parsing --------------------------------------------------------------------------------

def test_too_many_windows_is_refused(small_house):
    store, b, x, y = small_house
    _upload(store, b, x.iloc[:2], ["2020-01-01", "2025-01-01"], y.iloc[:2])
    with open_monitor(store, "house", b.meta, source="upload") as mon:
        with pytest.raises(InvalidArgument, match=f"at most {MAX_WINDOWS}"):
            mon.metrics("1min")


def test_open_monitor_rejects_bad_arguments(small_house):
    store, b, *_ = small_house
    with pytest.raises(InvalidArgument, match="Unknown source"):
        open_monitor(store, "house", b.meta, source="kafka")
    with pytest.raises(InvalidArgument, match="must be after"):
        open_monitor(store, "house", b.meta, since="2025-03-02", until="2025-03-01")
    with pytest.raises(InvalidArgument, match="min_rows"):
        with open_monitor(store, "house", b.meta) as mon:
            mon.metrics("day", min_rows=0)


def test_the_connection_cannot_read_other_files(house, tmp_path):
    store, b, *_ = house
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with open_monitor(store, "house", b.meta) as mon:
        for sql in (f"SELECT * FROM read_csv('{secret}')", "SET enable_external_access = true",
                    "SET allowed_directories = ['/']"):
            with pytest.raises(Exception, match="(?i)permission|disabled|locked|cannot"):
                mon.con.execute(sql).fetchall()


def test_classifier_drift_covers_labels_and_categories(churn):
    store, b, logged = churn
    with open_monitor(store, "churn", b.meta, sample=store.sample("churn", b.version)) as mon:
        d = mon.drift("day")
    kinds = dict(zip(d["column"], d["kind"]))
    assert kinds["plan"] == kinds["prediction"] == "categorical"
    assert kinds["tenure_months"] == "numeric"
    first = d[d["window_start"] == T0].set_index("column")
    assert first.loc["prediction", "method"] == "chisquare"
    assert first.loc["plan", "unseen_share"] == 0
    assert first.loc["plan", "n"] == len(logged[logged["ts"].dt.floor("D") == T0])
