"""Monitor page under AppTest: empty states, charts and tables, uploads, forms."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from monitor_helpers import page_texts, store_version, write_log
from streamlit.testing.v1 import AppTest

from core.monitoring import custom as custom_metrics
from core.monitoring import thresholds
from core.store.paths import actuals_dir
from core.store.versionstore import VersionStore

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "monitor.py")
T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture()
def board(tmp_path, monkeypatch, house_data, house_model):
    path = tmp_path / "store"
    monkeypatch.setenv("FIXATIVE_STORE", str(path))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    store = VersionStore(str(path))
    b = store_version(store, house_model, house_data, "price", "house")
    return store, b


@pytest.fixture()
def logged(board, house_data):
    store, b = board
    rows = house_data.iloc[:40].reset_index(drop=True)
    frame = write_log(store, b, rows.drop(columns=["price"]),
                      [T0 + pd.Timedelta(hours=3 * i) for i in range(40)], request_size=2)
    frame["price"] = rows.loc[frame["source_row"], "price"].to_numpy()
    return store, b, frame


def _page(**params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


def _tab(at: AppTest, label: str) -> AppTest:
    """Open a tab of the page (only the open tab runs) and run."""
    at.session_state["mon_tab"] = label
    at.run()
    assert not at.exception, at.exception
    return at


TABLES = {"metrics": {"n", "n_actual", "note"}, "drift": {"column", "method", "score"},
          "traffic": {"requests", "p50_ms"}, "status": {"model", "aliases", "status"}}


def _table(at: AppTest, which: str) -> pd.DataFrame:
    """The page's table of that kind, found by its columns."""
    for df in at.dataframe:
        if TABLES[which] <= set(map(str, df.value.columns)):
            return df.value
    raise AssertionError(f"no {which} table")


def _button(at: AppTest, label: str):
    for b in at.button:
        if b.label == label:
            return b
    raise AssertionError(f"no button {label!r}; have {[b.label for b in at.button]}")


def _csv(frame: pd.DataFrame) -> bytes:
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def test_no_models_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "empty"))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    at = _page()
    assert "no models yet" in page_texts(at).lower()


def test_model_without_data_says_what_to_do(board):
    at = _page(model="house")
    text = page_texts(at)
    assert "No predictions of house@" in text and "Upload" in text
    assert "No drift yet" in page_texts(_tab(at, "Drift"))


def test_metrics_drift_and_traffic_are_shown(logged):
    store, b, frame = logged
    at = _page(model="house")
    at.selectbox(key="mon_window").set_value("day").run()
    assert not at.exception, at.exception
    metrics = _table(at, "metrics")
    assert metrics["n"].sum() == len(frame) and len(metrics) == 5
    assert metrics["n_actual"].sum() == 0
    assert "No actuals yet" in page_texts(at)
    assert len(at.get("plotly_chart")) == 1  # only the open tab runs
    assert not _table(_tab(at, "Traffic"), "traffic").empty
    assert set(_table(_tab(at, "Drift"), "drift")["column"]) >= {"sqft_living", "zipcode"}
    assert len(at.get("plotly_chart")) == 2  # the heatmap and one column against its reference


def test_drift_against_a_reference_period_of_logged_rows(logged):
    at = _page(model="house")
    at.selectbox(key="mon_window").set_value("week")
    _tab(at, "Drift")
    assert (_table(at, "drift")["statistic"].fillna(0) > 0).any()  # vs the training sample
    at.text_input(key="mon_ref_from").input(str(T0.date())).run()
    assert "Give both ends of the drift reference" in page_texts(at)
    at.text_input(key="mon_ref_until").input(str((T0 + pd.Timedelta(days=7)).date())).run()
    assert not at.exception, at.exception
    drift = _table(at, "drift")
    assert len(drift) and (drift["statistic"] == 0).all()  # the week is its own reference


def test_upload_actuals_then_metrics_appear(logged):
    store, b, frame = logged
    at = _tab(_page(model="house"), "Upload")
    actuals = frame[["request_id", "row", "price"]]
    at.file_uploader(key="mon_actuals").set_value(("truth.csv", _csv(actuals), "text/csv"))
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="mon_actuals_value").value == "price"  # not the row column
    assert at.selectbox(key="mon_actuals_row").value == "row"
    _button(at, "Save actuals").click()
    at.run()
    assert not at.exception, at.exception
    assert f"Saved {len(frame):,} actuals, each matching a logged prediction." in page_texts(at)
    metrics = _table(_tab(at, "Performance"), "metrics")
    assert metrics["n_actual"].sum() == len(frame) and metrics["rmse"].notna().all()


def test_actuals_that_match_nothing_are_not_called_a_success(logged):
    at = _tab(_page(model="house"), "Upload")
    at.file_uploader(key="mon_actuals").set_value(
        ("truth.csv", b"request_id,price\nnope1,100000\nnope2,200000\n", "text/csv"))
    at.run()
    _button(at, "Save actuals").click()
    at.run()
    assert not at.exception, at.exception
    [warning] = [w.value for w in at.warning if "Saved 2 actuals" in w.value]
    assert "none matches a logged prediction yet" in warning
    assert "key column holds the values of 'request_id'" in warning
    assert not [s for s in at.success if "Saved" in s.value]


def test_bad_actuals_file_is_explained(logged):
    at = _tab(_page(model="house"), "Upload")
    at.file_uploader(key="mon_actuals").set_value(("truth.csv", b"", "text/csv"))
    at.run()
    assert "is empty" in page_texts(at)
    at.file_uploader(key="mon_actuals").set_value(
        ("truth.csv", b"request_id,price\nabc,not-a-number\n", "text/csv"))
    at.run()
    at.selectbox(key="mon_actuals_value").set_value("price")
    _button(at, "Save actuals").click()
    at.run()
    assert not at.exception
    assert "not numbers" in page_texts(at)


def test_a_parquet_bomb_is_explained_and_nothing_is_read(logged):
    """A few kilobytes that would expand to 6 GB of text: refused from its footer and
    dictionary, with what it would take; no actuals are saved."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    store, *_ = logged
    note = pa.DictionaryArray.from_arrays(pa.array(np.zeros(20_000, dtype=np.int32)),
                                          pa.array(["x" * 300_000]))
    out = io.BytesIO()
    pq.write_table(pa.table({"request_id": note, "price": np.ones(20_000)}), out,
                   compression="zstd")
    at = _tab(_page(model="house"), "Upload")
    at.file_uploader(key="mon_actuals").set_value(
        ("truth.parquet", out.getvalue(), "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    text = page_texts(at)
    assert "The actuals file 'truth.parquet' would take about 5.6 GiB in memory" in text
    assert "FIXATIVE_MAX_TABLE_BYTES" in text
    assert not [b for b in at.button if b.label == "Save actuals"]
    assert not store.fs.exists(actuals_dir(store, "house"))


def test_upload_data_is_scored_and_kept(board, house_data):
    store, b = board
    data = house_data.iloc[:30].copy()
    data["when"] = [f"2025-03-0{1 + i % 3}T10:00:00+02:00" for i in range(30)]
    data["prediction"] = 1.0  # made elsewhere: dropped, and every row scored here
    at = _tab(_page(model="house"), "Upload")
    at.file_uploader(key="mon_data").set_value(("new.csv", _csv(data), "text/csv"))
    at.run()
    assert not at.exception, at.exception
    at.selectbox(key="mon_data_time").set_value("when").run()
    # the model's target is in the file: it is the true value unless the person says not
    assert at.selectbox(key="mon_data_truth").value == "price"
    _button(at, "Score and keep").click()
    at.run()
    assert not at.exception, at.exception
    [said] = [s.value for s in at.success if "Scored 30 rows" in s.value]
    assert "Note: extra columns dropped: 'prediction'." in said
    assert "The file's own predictions are not used" in said
    # the file is still in the uploader: scoring it again needs a second thought
    assert "was scored and kept a moment ago (30 rows)" in page_texts(at)
    assert _button(at, "Score and keep").disabled
    at.selectbox(key="mon_source").set_value("upload")
    at.selectbox(key="mon_window").set_value("day")
    metrics = _table(_tab(at, "Performance"), "metrics")
    assert list(metrics["n"]) == [10, 10, 10] and (metrics["n_actual"] == 10).all()


def test_custom_metric_form_rejects_hostile_sql_and_saves_good(logged):
    store, *_ = logged
    at = _tab(_page(model="house"), "Custom metrics")
    # the example is written with this model's own columns
    assert at.text_area(key="mon_custom_sql").proto.placeholder == \
        "avg(prediction) / avg(bedrooms)"
    assert at.text_input(key="mon_custom_name").proto.placeholder == "prediction_per_bedrooms"
    at.text_input(key="mon_custom_name").input("sneaky")
    at.text_area(key="mon_custom_sql").input("(SELECT count(*) FROM read_csv('/etc/passwd'))")
    _button(at, "Save custom metric").click()
    at.run()
    assert not at.exception
    assert "subquery" in page_texts(at)
    # the message stays in view: the page is still on the custom-metric tab, form filled
    assert at.session_state["mon_tab"] == "Custom metrics"
    assert at.text_area(key="mon_custom_sql").value.startswith("(SELECT")
    at.run()
    assert at.session_state["mon_tab"] == "Custom metrics"
    assert custom_metrics.saved(store, "house") == []
    at.text_input(key="mon_custom_name").input("ppsf")
    at.text_area(key="mon_custom_sql").input("avg(prediction) / avg(sqft_living)")
    _button(at, "Save custom metric").click()
    at.run()
    assert "Saved custom metric ppsf" in page_texts(at)
    assert [m.name for m in custom_metrics.saved(store, "house")] == ["ppsf"]
    assert "ppsf" in _table(_tab(at, "Performance"), "metrics").columns


def test_threshold_form(logged):
    store, *_ = logged
    at = _tab(_page(model="house"), "Thresholds")
    at.selectbox(key="mon_rule_metric").set_value("r2").run()
    assert at.selectbox(key="mon_rule_dir").value == "below"  # a low r2 is the bad one
    at.selectbox(key="mon_rule_metric").set_value("rmse").run()
    assert at.selectbox(key="mon_rule_dir").value == "above"
    at.text_input(key="mon_rule_warning").input("10")
    at.text_input(key="mon_rule_alert").input("5")
    _button(at, "Save threshold").click()
    at.run()
    assert "must be above or equal" in page_texts(at)
    at.text_input(key="mon_rule_alert").input("20")
    at.text_input(key="mon_rule_window").input("day")
    _button(at, "Save threshold").click()
    at.run()
    assert "Saved the threshold for rmse" in page_texts(at)
    assert thresholds.load(store, "house").rule("rmse").alert == 20.0
    assert thresholds.load(store, "house").window == "day"
    # coming back to rmse shows its saved rule
    at.selectbox(key="mon_rule_metric").set_value("mae").run()
    assert at.text_input(key="mon_rule_alert").value == ""
    at.selectbox(key="mon_rule_metric").set_value("rmse").run()
    assert (at.text_input(key="mon_rule_warning").value,
            at.text_input(key="mon_rule_alert").value) == ("10", "20")


def test_bad_window_and_dates_are_explained(logged):
    at = _page(model="house")
    at.selectbox(key="mon_window").set_value("other").run()
    at.text_input(key="mon_period").input("fortnight").run()
    assert "Unknown window" in page_texts(at)
    at.text_input(key="mon_period").input("6h")
    at.text_input(key="mon_since").input("not a date").run()
    assert "Cannot read" in page_texts(at)


def test_status_of_all_models(logged):
    store, b, _ = logged
    at = _tab(_page(model="house"), "All models")
    _button(at, "Check all deployed models").click()
    at.run()
    assert "Nothing deployed yet" in page_texts(at)
    store.set_alias("house", "production", b.version)
    _button(at, "Check all deployed models").click()
    at.run()
    assert list(_table(at, "status")["aliases"]) == ["production"]
