"""How actuals meet logged rows (monitoring.join): the row in the key, one actual per key
and upload, keys compared by value, and retraction by an empty value."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import store_version, write_log
from sklearn import metrics as skm

from core.errors import InvalidInput
from core.monitoring.actuals import read_table, save_actuals
from core.monitoring.join import canonical_keys
from core.monitoring.monitor import open_monitor
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")
LOGGED = ["request_id", "bedrooms", "bathrooms", "sqft_living", "grade", "yr_built", "zipcode"]


@pytest.fixture()
def house(tmp_path, house_data, house_model):
    store = VersionStore(str(tmp_path / "board"))
    b = store_version(store, house_model, house_data, "price", "house")
    return store, b, house_data


def _log(store, b, rows, request_size=1):
    ts = [T0 + pd.Timedelta(minutes=i) for i in range(len(rows))]
    logged = write_log(store, b, rows.drop(columns=["price"]), ts, request_size=request_size)
    logged["price"] = rows.loc[logged["source_row"], "price"].to_numpy()
    return logged


def _joined(store, b):
    with open_monitor(store, "house", b.meta) as mon:
        rows = mon.query('SELECT request_id, "row", zipcode, bathrooms, prediction, actual '
                         'FROM monitoring ORDER BY ts, "row"')
        return rows, mon.metrics("week"), mon.labelled


def _csv(frame):
    return read_table(frame.to_csv(index=False).encode(), "actuals.csv")


def test_row_is_part_of_the_key_on_a_logged_column(house):
    store, b, data = house
    # Batched requests of 3 rows; the rows of a request share their zipcode (a customer).
    rows = data.iloc[:30].reset_index(drop=True)
    rows["zipcode"] = [f"c{i // 3:03d}" for i in range(30)]
    logged = _log(store, b, rows, request_size=3)
    truth = pd.DataFrame({"customer": logged["zipcode"], "r": logged["row"],
                          "y": logged["price"]})
    saved = save_actuals(store, "house", _csv(truth), key_column="customer", actual_column="y",
                         on="zipcode", row_column="r", log_columns=LOGGED)
    assert saved.matched == 30 and saved.by_row
    assert store.fs.exists(store.path(".fixative", "actuals", "house", "by-zipcode+row"))
    got, metrics, how = _joined(store, b)
    # one row per logged row (no fan-out), each with its own actual
    assert len(got) == 30 and how == "materialised"
    assert got["actual"].tolist() == pytest.approx(logged["price"].tolist())
    assert metrics["n_actual"].sum() == 30
    assert metrics["rmse"].iloc[0] == pytest.approx(
        skm.root_mean_squared_error(logged["price"], logged["prediction"]))


def test_duplicate_keys_are_refused_naming_them_and_nothing_is_stored(house):
    store, b, data = house
    logged = _log(store, b, data.iloc[:12].reset_index(drop=True), request_size=2)
    dup = pd.DataFrame({"request_id": list(logged["request_id"]) + list(logged["request_id"]),
                        "row": list(logged["row"]) * 2, "y": np.arange(24.0)})
    with pytest.raises(InvalidInput, match=r"same key and row \('request_id', 'row'\) more than "
                                           r"once: .* and 7 more \(12 keys in all"):
        save_actuals(store, "house", dup, key_column="request_id", actual_column="y",
                     row_column="row")
    # Numbers are one key when equal: 29 and '29.0' in one file are the same customer.
    same = pd.DataFrame({"k": [29, "29.0", "x"], "y": [1.0, 2.0, 3.0]}, dtype=object)
    with pytest.raises(InvalidInput, match=r"'29' \(rows 0, 1\).*add the row column"):
        save_actuals(store, "house", same, key_column="k", actual_column="y", on="zipcode",
                     log_columns=LOGGED)
    assert not store.fs.exists(store.path(".fixative", "actuals"))


def test_keys_compare_by_value_across_types(house):
    store, b, data = house
    rows = data.iloc[:8].reset_index(drop=True)
    rows["bathrooms"] = [29.0, 30.0, 0.1, 1e20, 31.0, 2.5, 32.0, 33.0]  # a float column
    rows["zipcode"] = ["029", "1e3", "98033", "0.10", "abc", "29.50", "x", "y"]  # text
    _log(store, b, rows)
    # Keys as a CSV reads them (29 an int, '029' read as 29), as text, as floats.
    by_float = pd.DataFrame({"k": ["29", "30.0", "0.1", "1e20", "31", "2.50", "32", "033"],
                             "y": np.arange(8.0)})
    save_actuals(store, "house", _csv(by_float), key_column="k", actual_column="y",
                 on="bathrooms", log_columns=LOGGED)
    got, metrics, _ = _joined(store, b)
    assert got["actual"].tolist() == list(np.arange(8.0))  # '033' is 33.0 too
    by_text = pd.DataFrame({"zip": [29, 1000.0, "98033", 0.1, "abc", 29.5], "y": 100 + np.arange(
        6.0)}, dtype=object)
    buf = io.BytesIO()
    by_text.astype(str).to_parquet(buf)
    for frame in (by_text, read_table(buf.getvalue(), "zip.parquet")):
        saved = save_actuals(store, "house", frame, key_column="zip", actual_column="y",
                             on="zipcode", log_columns=LOGGED)
        assert saved.matched == 6
    assert canonical_keys(pd.Series(["033", 33.0, "3.3e1", " 33 "], dtype=object)).to_pylist() \
        == ["33"] * 4


def test_hostile_keys_match_exactly(house):
    store, b, data = house
    hostile = ["=HYPERLINK(\"http://x\")", "+1-2", "@SUM(A1)", "a\x00b", "ключ 🔑", "é" * 50_000,
               "'; DROP TABLE x; --", "\tx\r"]
    rows = data.iloc[:len(hostile)].reset_index(drop=True)
    rows["zipcode"] = hostile
    _log(store, b, rows)
    truth = pd.DataFrame({"zip": hostile, "y": np.arange(len(hostile), dtype=float)})
    saved = save_actuals(store, "house", truth, key_column="zip", actual_column="y",
                         on="zipcode", log_columns=LOGGED)
    assert saved.matched == len(hostile)
    got, *_ = _joined(store, b)
    assert dict(zip(got["zipcode"], got["actual"])) == dict(zip(hostile, truth["y"]))
    # Nearly the same keys do not match: exact text for what is not a number.
    near = pd.DataFrame({"zip": ["=hyperlink(\"http://x\")", "ключ", "é" * 49_999],
                         "y": [1.0, 2.0, 3.0]})
    assert save_actuals(store, "house", near, key_column="zip", actual_column="y",
                        on="zipcode", log_columns=LOGGED).matched == 0


def test_an_empty_value_retracts_an_actual(house):
    store, b, data = house
    logged = _log(store, b, data.iloc[:10].reset_index(drop=True))
    first = pd.DataFrame({"request_id": logged["request_id"], "y": logged["price"]})
    save_actuals(store, "house", first, key_column="request_id", actual_column="y")
    later = first.iloc[:3].copy()
    later["y"] = ["", None, 5.0]  # empty cells: retract two, correct one
    saved = save_actuals(store, "house", _csv(later), key_column="request_id",
                         actual_column="y")
    assert saved.retracted == 2 and "retracted 2" in saved.summary()
    got, metrics, how = _joined(store, b)
    assert how == "materialised"
    assert got["actual"].isna().tolist() == [True, True] + [False] * 8
    assert got["actual"].iloc[2] == 5.0
    assert metrics["n_actual"].iloc[0] == 8
    # A file that only retracts must say so: a wrong column would retract everything.
    blank = first.iloc[3:5].assign(y=None)
    with pytest.raises(InvalidInput, match="has no values. To retract"):
        save_actuals(store, "house", blank, key_column="request_id", actual_column="y")
    assert _joined(store, b)[1]["n_actual"].iloc[0] == 8
    save_actuals(store, "house", blank, key_column="request_id", actual_column="y",
                 retract=True)
    assert _joined(store, b)[1]["n_actual"].iloc[0] == 6
    # and a later value brings one back
    save_actuals(store, "house", first.iloc[:1], key_column="request_id", actual_column="y")
    assert _joined(store, b)[1]["n_actual"].iloc[0] == 7


def test_retraction_on_a_logged_column(house):
    store, b, data = house
    rows = data.iloc[:6].reset_index(drop=True)
    rows["zipcode"] = ["a", "b", "c", "a", "b", "c"]
    _log(store, b, rows)
    save_actuals(store, "house", pd.DataFrame({"z": ["a", "b", "c"], "y": [1.0, 2.0, 3.0]}),
                 key_column="z", actual_column="y", on="zipcode", log_columns=LOGGED)
    assert _joined(store, b)[1]["n_actual"].iloc[0] == 6
    save_actuals(store, "house", pd.DataFrame({"z": ["b"], "y": [np.nan]}), key_column="z",
                 actual_column="y", on="zipcode", log_columns=LOGGED, retract=True)
    got, metrics, _ = _joined(store, b)
    assert metrics["n_actual"].iloc[0] == 4
    assert got.loc[got["zipcode"] == "b", "actual"].isna().all()
