"""Custom SQL metrics: values, validation and hostile input."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import store_version, write_log

from core.errors import InvalidArgument
from core.monitoring import custom as cm
from core.monitoring import thresholds as th
from core.monitoring.actuals import save_actuals
from core.monitoring.drift import MIN_VALUES
from core.monitoring.monitor import open_monitor
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture(scope="module")
def logged(house_data, house_model, tmp_path_factory):
    store = VersionStore(str(tmp_path_factory.mktemp("custom") / "board"))
    b = store_version(store, house_model, house_data, "price", "house")
    rows = house_data.iloc[:120].reset_index(drop=True)
    ts = [T0 + pd.Timedelta(hours=i) for i in range(120)]
    frame = write_log(store, b, rows.drop(columns=["price"]), ts, request_size=3, failed=[2])
    frame["price"] = rows.loc[frame["source_row"], "price"].to_numpy()
    save_actuals(store, "house", frame, key_column="request_id", actual_column="price",
                 row_column="row")
    return store, b, frame


def test_values_match_pandas(logged):
    store, b, frame = logged
    metrics = [cm.CustomMetric("ppsf", "avg(prediction) / avg(sqft_living)"),
               cm.CustomMetric("error_rate", "count(*) FILTER (WHERE status >= 400) / count(*)"),
               cm.CustomMetric("bias", "avg(prediction - actual)"),
               cm.CustomMetric("p90", "quantile_cont(prediction, 0.9)")]
    with open_monitor(store, "house", b.meta) as mon:
        out = cm.compute(mon, "day", metrics)
    assert out.attrs["errors"] == {}
    for row in out.itertuples():
        g = frame[frame["ts"].dt.floor("D") == row.window_start]
        assert row.ppsf == pytest.approx(g["prediction"].mean() / g["sqft_living"].mean())
        assert row.bias == pytest.approx((g["prediction"] - g["price"]).mean())
        assert row.p90 == pytest.approx(np.quantile(g["prediction"], 0.9))
    # The failed request (the 3rd, on day 1) is logged as one row next to the served ones.
    day1 = frame[frame["ts"].dt.floor("D") == T0]
    assert out["error_rate"].iloc[0] == pytest.approx(1 / (len(day1) + 1))
    assert out["error_rate"].iloc[1:].eq(0).all()


HOSTILE = [
    ("", "empty"),
    ("   ", "empty"),
    ("avg(prediction); DROP TABLE monitoring", "remove the ';'"),
    ("count(*) FROM read_parquet('/etc/passwd')", "not a valid SQL|single expression"),
    ("(SELECT count(*) FROM read_csv('/etc/passwd'))", "subquery"),
    ("avg(prediction) FILTER (WHERE request_id IN (SELECT request_id FROM monitoring))",
     "subquery"),
    ("getenv('HOME')", "not allowed|getenv"),
    ("max(current_setting('threads'))", "not allowed"),
    ("count(*) + len(glob('/*'))", "not allowed"),
    ("avg(prediction) OVER ()", "window function"),
    ("sqft_living", "outside an aggregate"),
    ("avg(prediction) + sqft_living", "outside an aggregate"),
    ("1 + 1", "must aggregate"),
    ("avg(nosuchcol)", "Unknown column"),
    ("avg(m.prediction)", "Unknown column"),
    ("avg(avg(prediction))", "nested"),
    ("avg(prediction) -- comment", "Comments"),
    ("avg(prediction) /* x */", "Comments"),
    ("COPY monitoring TO '/tmp/x.csv'", "not a valid SQL"),
    ("ATTACH '/tmp/x.db'", "not a valid SQL|does not fit|cannot contain"),
    ("pragma version", "not a valid SQL|does not fit|Unknown column"),
    ("max(route)", "must return a number"),
    ("avg(prediction) " + "+ 1 " * 2000, "at most"),
    ("avg(prediction)\x00", "NUL"),
    ("main.avg(prediction)", "Qualified|not allowed"),
    ("list_transform([1], x -> x)[1] + count(*)", "lambda|not allowed"),
]


@pytest.mark.parametrize("sql,message", HOSTILE)
def test_hostile_and_wrong_expressions_are_rejected(logged, sql, message):
    store, b, _ = logged
    with open_monitor(store, "house", b.meta) as mon:
        with pytest.raises(InvalidArgument, match=message):
            cm.validate(mon, sql)


def test_save_list_delete_and_names(logged):
    store, b, _ = logged
    with open_monitor(store, "house", b.meta) as mon:
        saved = cm.save(store, mon, cm.CustomMetric("ppsf", " avg(prediction)/avg(sqft_living) ",
                                                    "price per square foot"))
        assert saved.sql == "avg(prediction)/avg(sqft_living)"
        for bad, msg in (("1abc", "not allowed"), ("a b", "not allowed"), ("rmse", "built-in"),
                         ("x" * 60, "not allowed")):
            with pytest.raises(InvalidArgument, match=msg):
                cm.save(store, mon, cm.CustomMetric(bad, "count(*)"))
        with pytest.raises(InvalidArgument, match="direction"):
            cm.save(store, mon, cm.CustomMetric("ok_name", "count(*)", direction="sideways"))
        with pytest.raises(InvalidArgument, match="outside an aggregate"):
            cm.save(store, mon, cm.CustomMetric("bad", "prediction"))
    assert [m.name for m in cm.saved(store, "house")] == ["ppsf"]
    cm.delete(store, "house", "ppsf")
    assert cm.saved(store, "house") == []
    with pytest.raises(InvalidArgument, match="No custom metric"):
        cm.delete(store, "house", "ppsf")


def test_runtime_failure_keeps_the_other_metrics(logged):
    store, b, _ = logged
    metrics = [cm.CustomMetric("ok", "count(*)"),
               cm.CustomMetric("boom", "max(CAST(route AS INTEGER))")]
    with open_monitor(store, "house", b.meta) as mon:
        out = cm.compute(mon, "day", metrics)
    assert (out["ok"] > 0).all()
    assert out["boom"].isna().all() and "boom" in out.attrs["errors"]


def test_thresholds_mark_windows(logged):
    store, b, _ = logged
    # 24 rows a day: below the default minimum of 30 rows, so lower it to mark them
    settings = th.Settings(window="day", min_rows=20, rules=[
        th.Rule("rmse", warning=1.0, alert=1e12, direction="above"),
        th.Rule("r2", warning=0.99999, alert=-100, direction="below"),
        th.Rule("custom:ppsf", alert=0.0),
        th.Rule("null_share", warning=0.5)])
    with open_monitor(store, "house", b.meta, sample=store.sample("house", b.version)) as mon:
        m = mon.metrics("day")
        d = mon.drift("day")
        c = cm.compute(mon, "day", [cm.CustomMetric("ppsf", "avg(prediction)/avg(sqft_living)")])
        weekly = mon.drift("week")
    marks = th.evaluate(settings, m, d, c)
    assert set(marks.loc[marks["metric"] == "rmse", "status"]) == {"warning"}
    assert set(marks.loc[marks["metric"] == "r2", "status"]) == {"warning"}
    assert set(marks.loc[marks["metric"] == "custom:ppsf", "status"]) == {"alert"}
    assert set(marks.loc[marks["metric"] == "null_share", "status"]) == {"ok"}
    drift_marks = marks[marks["metric"].str.startswith("drift:")]
    assert len(drift_marks) == len(d)
    # drifted -> alert; no drift on enough values -> ok (or a warning-size drift);
    # too few values to rule drift out -> none, unless the evidence is there
    verdicts = d["drifted"].tolist()
    assert any(v is None for v in verdicts)  # these windows hold ~24 requests a day
    for v, q, n, status in zip(verdicts, d["p_adjusted"], d["n"], drift_marks["status"]):
        if v is True:
            assert status == "alert"
        elif v is False:
            assert status in ("ok", "warning")
        elif status != "none":
            assert q < 0.05
        if n < MIN_VALUES:
            assert status == "none"
    assert (drift_marks["n"] == d["n"].to_numpy()).all()
    assert (weekly["n"] >= MIN_VALUES).all()
    weekly_marks = th.evaluate(th.Settings(window="week"), None, weekly, None)
    assert set(weekly_marks["status"]) <= {"ok", "warning", "alert"}


def test_rules_validate_and_round_trip(logged):
    store, b, _ = logged
    with pytest.raises(InvalidArgument, match="must be above or equal"):
        th.Rule("rmse", warning=10, alert=5)
    with pytest.raises(InvalidArgument, match="warning or an alert"):
        th.Rule("rmse")
    with pytest.raises(InvalidArgument, match="direction"):
        th.Rule("rmse", alert=1, direction="up")
    with pytest.raises(InvalidArgument, match="finite"):
        th.Rule("rmse", alert=float("inf"))
    with pytest.raises(InvalidArgument, match="number"):
        th.Settings.from_dict({"rules": [{"metric": "rmse", "alert": "lots"}]})
    with pytest.raises(InvalidArgument, match="Unknown window"):
        th.save(store, "house", th.Settings(window="fortnight"))
    with pytest.raises(InvalidArgument, match="Two thresholds"):
        th.save(store, "house", th.Settings(rules=[th.Rule("rmse", alert=1),
                                                   th.Rule("rmse", alert=2)]))
    s = th.Settings(window="day", rules=[th.Rule("mae", warning=1, alert=2)])
    th.save(store, "house", s)
    assert th.load(store, "house") == s
    assert th.Rule("x", alert=1).status(float("nan")) == "none"
    assert th.worst(["ok", "alert", "warning"]) == "alert" and th.worst([]) == "none"


def test_status_of_aliased_models(logged):
    store, b, frame = logged
    store.set_alias("house", "production", b.version)
    th.save(store, "house", th.Settings(window="day", min_rows=20,
                                        rules=[th.Rule("rmse", alert=1.0)]))
    now = (T0 + pd.Timedelta(days=5, hours=1)).to_pydatetime()
    items = th.status(store, now=now)
    assert [(s.model, s.aliases, s.status) for s in items] == [("house", ["production"], "alert")]
    assert "rmse" in items[0].alerts and items[0].n >= 20
    assert items[0].message.startswith("alert: ") and "on 2" in items[0].message
    later = th.status(store, "house", now=(T0 + pd.Timedelta(days=60)).to_pydatetime())
    assert later[0].status == "none" and "no predictions" in later[0].message
    assert list(th.status_frame(items)["status"]) == ["alert"]


def test_status_includes_versions_served_without_an_alias(logged):
    store, b, _ = logged
    for alias in store.aliases("house"):  # the board is shared with the tests above
        store.remove_alias("house", alias)
    th.save(store, "house", th.Settings(window="day", min_rows=20,
                                        rules=[th.Rule("rmse", alert=1.0)]))
    now = (T0 + pd.Timedelta(days=5, hours=1)).to_pydatetime()
    assert th.status(store, now=now) == []  # no alias: nothing deployed as far as it knows
    items = th.status(store, now=now, also=[("house", b.version), ("house", b.version)])
    assert [(s.model, s.version, s.aliases, s.status) for s in items] == [
        ("house", b.version, [], "alert")]
    store.set_alias("house", "production", b.version)
    again = th.status(store, now=now, also=[("house", b.version)])
    assert [s.aliases for s in again] == [["production"]]  # listed once
    # with a model named, pairs of other models are left out
    assert len(th.status(store, "house", now=now, also=[("elsewhere", "v1")])) == 1


def test_example_metric_uses_the_models_own_columns(logged, churn_model, churn_data):
    from core.model.bundle import bundle

    store, b, _ = logged
    name, sql = cm.example(b.meta)
    first_number = next(c.name for c in b.meta.prototype.columns if c.kind in ("int", "float"))
    assert (name, sql) == (f"prediction_per_{first_number}",
                           f"avg(prediction) / avg({first_number})")
    with open_monitor(store, "house", b.meta) as mon:
        assert cm.validate(mon, sql) == sql  # a placeholder that works when typed in
    churn = bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn").meta
    name, sql = cm.example(churn)
    assert name == "share_yes" and "prediction = 'yes'" in sql
    odd = copy.deepcopy(b.meta)
    odd.prototype.columns[0].name = 'sq "ft"'
    odd.prototype.columns[0].kind = "float"
    assert cm.example(odd)[1] == 'avg(prediction) / avg("sq ""ft""")'


@pytest.mark.parametrize("sql", ["count(*) FILTER (WHERE route <> ';')",
                                 "count(*) FILTER (WHERE route <> 'a--b')",
                                 "count(*) FILTER (WHERE route = '/* not a comment */')"])
def test_harmless_string_literals_are_accepted(logged, sql):
    store, b, _ = logged
    with open_monitor(store, "house", b.meta) as mon:
        assert cm.validate(mon, sql) == sql
        out = cm.compute(mon, "day", [cm.CustomMetric("odd", sql)])
    assert out.attrs["errors"] == {} and out["odd"].notna().all()


@pytest.mark.parametrize("name", ["note", "window_end", "window_start", "n", "n_proba",
                                  "Note", "version", "k", "log_loss"])
def test_names_of_report_columns_are_refused(logged, name):
    store, b, _ = logged
    with open_monitor(store, "house", b.meta) as mon:
        with pytest.raises(InvalidArgument, match="column of the monitoring report|built-in"):
            cm.save(store, mon, cm.CustomMetric(name, "count(*)"))
        # a record written before the rule existed cannot overwrite the column either
        out = cm.compute(mon, "day", [cm.CustomMetric(name, "count(*)")])
    assert name in out.attrs["errors"]
    assert list(out.columns) == ["window_start", "window_end"]


@pytest.mark.parametrize("sql", ["sum(len(generate_series(1, 2e9)))",
                                 "sum(len(range(0, 2000000000)))",
                                 "max(len(repeat(route, 2000000000)))",
                                 "max(len(repeat(route, sqft_living)))"])
def test_expressions_that_allocate_by_a_number_are_refused(logged, sql):
    store, b, _ = logged
    with open_monitor(store, "house", b.meta) as mon:
        with pytest.raises(InvalidArgument, match="not allowed|constant size"):
            cm.validate(mon, sql)


def test_a_slow_metric_is_stopped_and_the_others_kept(logged, monkeypatch):
    store, b, _ = logged
    slow = "sum(levenshtein(repeat(route, 20000), repeat(request_id, 20000)))"
    metrics = [cm.CustomMetric("ok", "count(*)"), cm.CustomMetric("slow", slow)]
    with open_monitor(store, "house", b.meta) as mon:
        assert cm.validate(mon, slow) == slow  # passes the checks: only its cost is wrong
        out = cm.compute(mon, "day", metrics, seconds=1.0)
    # the slow metric was interrupted by the time limit: empty, with the limit as reason
    assert (out["ok"] > 0).all() and out["slow"].isna().all()
    assert out.attrs["errors"]["slow"].startswith("stopped after 1 s, the time limit")
    # monitor-status finishes too, and says which metric failed
    monkeypatch.setenv("FIXATIVE_MONITOR_QUERY_SECONDS", "1")
    with open_monitor(store, "house", b.meta) as mon:
        cm.save(store, mon, cm.CustomMetric("slow", slow))
    try:
        now = (T0 + pd.Timedelta(days=4)).to_pydatetime()
        items = th.status(store, "house", now=now)
        assert "custom metric slow failed: stopped after 1 s" in items[0].message
    finally:
        cm.delete(store, "house", "slow")


def test_a_metric_over_the_memory_limit_fails_alone(logged, monkeypatch):
    store, b, _ = logged
    monkeypatch.setenv("FIXATIVE_MONITOR_MEMORY_LIMIT", "20MB")
    big = "len(string_agg(repeat(request_id, 100000), ','))"
    with open_monitor(store, "house", b.meta) as mon:
        out = cm.compute(mon, "day", [cm.CustomMetric("ok", "count(*)"),
                                      cm.CustomMetric("big", big)], seconds=5)
    assert (out["ok"] > 0).all() and out["big"].isna().all()
    assert "memory limit (20MB, FIXATIVE_MONITOR_MEMORY_LIMIT)" in out.attrs["errors"]["big"]
    monkeypatch.setenv("FIXATIVE_MONITOR_MEMORY_LIMIT", "lots")
    with pytest.raises(InvalidArgument, match="not a memory size"):
        open_monitor(store, "house", b.meta)
