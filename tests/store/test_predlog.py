"""Prediction log: segment format, flushing, several writers, the DuckDB reader."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import store_fixtures

from core.errors import InvalidArgument
from core.model.bundle import bundle
from core.store import paths, predlog
from core.store.predlog import LogWriter, log_relation, write_rows
from core.store.versionstore import VersionStore

s3_server, s3_env, s3_store = store_fixtures.s3_server, store_fixtures.s3_env, \
    store_fixtures.s3_store
SEGMENT = re.compile(r"^[A-Za-z0-9_-]+-\d+-[0-9a-f]{8}-\d{6}\.parquet$")


@pytest.fixture()
def store(tmp_path):
    return VersionStore(str(tmp_path / "board"))


@pytest.fixture(scope="module")
def house(house_model, house_data):
    return bundle(house_model, house_data.drop(columns=["price"]), name="house")


@pytest.fixture(scope="module")
def frame(house, house_data):
    f, _ = house.prototype.validate(house_data.drop(columns=["price"]).head(3))
    return f


def kinds(b):
    return {c.name: c.kind for c in b.prototype.columns}


def files(store, name="house"):
    return paths.segment_files(store, paths.log_dir(store, name))


def test_segment_schema_and_rows(store, house, frame):
    ts = datetime(2026, 5, 3, 12, 0, 1, 250_000, tzinfo=UTC)
    preds = house.model.predict(frame)
    with LogWriter(store, "house", "v1", feature_kinds=kinds(house)) as w:
        w.append(ts=ts, request_id="r1", route="predict", status=200, latency_ms=12.5,
                 frame=frame, prediction=preds)
        w.append(ts=ts, request_id="r2", route="invocations", status=422, latency_ms=1.0,
                 error_code="invalid_input")
    [path] = files(store)
    assert path.startswith(store.path(".fixative", "logs", "house", "v1", "2026-05-03") + "/")
    assert SEGMENT.match(os.path.basename(path))
    table = pq.read_table(path)
    schema = table.schema
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("status").type == pa.int16()
    assert schema.field("row").type == pa.int32()
    assert schema.field("latency_ms").type == pa.float64()
    assert schema.field("prediction").type == pa.float64()
    assert schema.field("proba").type == pa.list_(pa.float64())
    assert schema.names[:9] == ["ts", "request_id", "model", "version", "route", "status",
                                "latency_ms", "row", "error_code"]
    assert schema.names[9:-2] == house.prototype.names
    assert schema.names[-2:] == ["prediction", "proba"]
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows] == ["r1", "r1", "r1", "r2"]
    assert [r["row"] for r in rows] == [0, 1, 2, None]
    assert rows[0]["ts"] == ts
    assert rows[3]["error_code"] == "invalid_input" and rows[3]["status"] == 422
    assert rows[3]["bedrooms"] is None and rows[3]["prediction"] is None
    np.testing.assert_allclose([r["prediction"] for r in rows[:3]], preds)
    assert [r["bedrooms"] for r in rows[:3]] == frame["bedrooms"].tolist()
    assert [r["zipcode"] for r in rows[:3]] == frame["zipcode"].tolist()
    assert {r["model"] for r in rows} == {"house"} and {r["version"] for r in rows} == {"v1"}


def test_failed_only_segment_types_features_from_the_prototype(store, house):
    with LogWriter(store, "house", "v1", feature_kinds=kinds(house)) as w:
        w.append(ts=datetime.now(UTC), request_id="x", route="predict", status=400,
                 latency_ms=0.3, error_code="bad_request")
    table = pq.read_table(files(store)[0])
    assert table.schema.field("bedrooms").type == pa.int64()
    assert table.schema.field("bathrooms").type == pa.float64()
    assert table.schema.field("zipcode").type == pa.string()
    assert table.num_rows == 1


def test_classifier_labels_and_probabilities(store, churn_model, churn_data):
    b = bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn")
    f, _ = b.prototype.validate(churn_data.drop(columns=["churned"]).head(4))
    proba = churn_model.predict_proba(f)
    labels = np.asarray(b.meta.classes, dtype=object)[proba.argmax(axis=1)]
    with LogWriter(store, "churn", "v1", classes=b.meta.classes) as w:
        w.append(ts=datetime.now(UTC), request_id="a", route="predict_proba", status=200,
                 latency_ms=2.0, frame=f, prediction=labels, proba=proba)
        w.append(ts=datetime.now(UTC), request_id="b", route="predict", status=200,
                 latency_ms=2.0, frame=f.head(1), prediction=churn_model.predict(f.head(1)))
    table = pq.read_table(files(store, "churn")[0]).to_pylist()
    assert table[0]["prediction"] in ("yes", "no")
    assert [r["prediction"] for r in table[:4]] == labels.tolist()
    np.testing.assert_allclose(table[0]["proba"], proba[0])
    assert table[4]["proba"] is None


def test_feature_names_that_clash_are_prefixed(store):
    f = pd.DataFrame({"status": [1, 2], "row": ["a", "b"], "x": [0.5, 1.5]})
    write_rows(store, "odd", "v1", f, [1.0, 2.0])
    names = pq.read_table(files(store, "odd")[0]).schema.names
    assert "input_status" in names and "input_row" in names and "x" in names
    assert names.count("status") == 1 and names.count("row") == 1


def test_requests_are_split_by_utc_day(store, house, frame):
    day1 = datetime(2026, 1, 1, 23, 59, 59, tzinfo=UTC)
    with LogWriter(store, "house", "v1") as w:
        w.append(ts=day1, request_id="a", route="predict", status=200, latency_ms=1,
                 frame=frame, prediction=np.zeros(len(frame)))
        w.append(ts=day1 + timedelta(seconds=2), request_id="b", route="predict", status=200,
                 latency_ms=1, frame=frame, prediction=np.zeros(len(frame)))
    days = sorted(os.path.basename(os.path.dirname(p)) for p in files(store))
    assert days == ["2026-01-01", "2026-01-02"]


def test_background_thread_flushes_without_close(store, house, frame):
    w = LogWriter(store, "house", "v1", flush_interval=0.05)
    w.start()
    try:
        w.append(ts=datetime.now(UTC), request_id="a", route="predict", status=200,
                 latency_ms=1, frame=frame, prediction=np.zeros(len(frame)))
        deadline = time.monotonic() + 20
        while not files(store) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(files(store)) == 1
        assert w.pending == 0
    finally:
        w.close()


def test_two_writers_in_one_process_never_share_a_file(store, frame):
    writers = [LogWriter(store, "house", "v1") for _ in range(2)]
    for round_ in range(3):
        for i, w in enumerate(writers):
            w.append(ts=datetime.now(UTC), request_id=f"{i}-{round_}", route="predict",
                     status=200, latency_ms=1, frame=frame, prediction=np.zeros(len(frame)))
            w.flush()
    found = files(store)
    assert len(found) == 6 and len(set(found)) == 6
    prefixes = {os.path.basename(p).rsplit("-", 1)[0] for p in found}
    assert len(prefixes) == 2
    assert not [p for p in store.fs.find(store.path(".fixative")) if p.endswith(".tmp")]


def test_a_failed_write_keeps_the_requests(tmp_path, frame):
    blocker = tmp_path / "board"
    blocker.mkdir()
    (blocker / ".fixative").write_text("not a folder")  # makedirs under it must fail
    s = VersionStore.__new__(VersionStore)  # a board whose log folder cannot be created
    s.fs = VersionStore(str(tmp_path / "other")).fs
    s.path = lambda *parts: "/".join([str(blocker), *parts])
    w = LogWriter(s, "house", "v1")
    w.append(ts=datetime.now(UTC), request_id="a", route="predict", status=200,
             latency_ms=1, frame=frame, prediction=np.zeros(len(frame)))
    with pytest.raises(OSError):
        w.flush()
    assert w.pending == 1
    (blocker / ".fixative").unlink()
    assert len(w.flush()) == 1
    assert w.pending == 0


def test_flush_interval_must_be_positive(store):
    with pytest.raises(ValueError, match="positive"):
        LogWriter(store, "house", "v1", flush_interval=0)


# -- write_rows ---------------------------------------------------------------------------


def test_write_rows_for_uploaded_data(store, house, frame):
    preds = house.model.predict(frame)
    path = write_rows(store, "house", "v2", frame, preds, request_id="upload-1")
    rows = pq.read_table(path).to_pylist()
    assert [r["route"] for r in rows] == ["upload"] * 3
    assert [r["row"] for r in rows] == [0, 1, 2]
    assert {r["request_id"] for r in rows} == {"upload-1"}


@pytest.mark.parametrize("kwargs, match", [
    ({"route": "batch"}, "route must be one of predict, predict_proba, invocations, upload"),
    ({"ts": datetime(2026, 1, 1)}, "timezone-aware"),
    ({"proba": [[0.5, 0.5]]}, "Got 1 probability rows for 3 input rows"),
])
def test_write_rows_rejects_bad_arguments(store, frame, kwargs, match):
    with pytest.raises(InvalidArgument, match=match):
        write_rows(store, "house", "v1", frame, np.zeros(3), **kwargs)


def test_write_rows_checks_lengths(store, frame):
    with pytest.raises(InvalidArgument, match="Got 2 predictions for 3 input rows"):
        write_rows(store, "house", "v1", frame, [1.0, 2.0])
    with pytest.raises(InvalidArgument, match="non-empty DataFrame"):
        write_rows(store, "house", "v1", frame.head(0), [])


# -- reader ---------------------------------------------------------------------------------


def test_log_relation_reads_every_version_with_union_by_name(store, house, frame):
    write_rows(store, "house", "v1", frame, house.model.predict(frame))
    other = pd.DataFrame({"bedrooms": [1], "new_feature": ["z"]})
    write_rows(store, "house", "v2", other, [5.0])
    con = duckdb.connect()
    rel = log_relation(store, con, "house")
    got = rel.order("version, row").fetchdf()
    assert len(got) == 4
    assert set(got["version"]) == {"v1", "v2"}
    assert got["new_feature"].isna().sum() == 3
    only_v2 = log_relation(store, con, "house", versions=["v2"]).fetchdf()
    assert only_v2["prediction"].tolist() == [5.0]
    n = con.sql("select count(*) from rel where route = 'upload'").fetchall()[0][0]
    assert n == 4


def test_log_relation_with_no_log_is_empty_with_the_log_columns(store):
    con = duckdb.connect()
    rel = log_relation(store, con, "nothing")
    assert rel.columns == list(predlog.LOG_COLUMNS[:9]) + ["prediction", "proba"]
    assert rel.fetchall() == []


@pytest.mark.s3
def test_log_on_an_s3_board_reads_through_fsspec(s3_store, house, frame):
    preds = house.model.predict(frame)
    with LogWriter(s3_store, "house", "v1", feature_kinds=kinds(house)) as w:
        w.append(ts=datetime.now(UTC), request_id="s3-a", route="predict", status=200,
                 latency_ms=3.0, frame=frame, prediction=preds)
    write_rows(s3_store, "house", "v2", frame.head(1), preds[:1], request_id="s3-b")
    found = files(s3_store)
    assert len(found) == 2 and all(p.endswith(".parquet") for p in found)
    con = duckdb.connect()
    rel = log_relation(s3_store, con, "house")
    got = rel.order("version, row").fetchdf()
    assert got["request_id"].tolist() == ["s3-a"] * 3 + ["s3-b"]
    np.testing.assert_allclose(got["prediction"].head(3), preds)
    again = log_relation(s3_store, con, "house", versions=["v2"]).fetchdf()  # same connection
    assert again["request_id"].tolist() == ["s3-b"]


def test_arrow_backed_text_columns_with_failures(store, frame):
    f = frame.astype({"zipcode": "string[pyarrow]"})
    with LogWriter(store, "house", "v1") as w:
        w.append(ts=datetime.now(UTC), request_id="a", route="predict", status=200,
                 latency_ms=1, frame=f, prediction=np.zeros(len(f)))
        w.append(ts=datetime.now(UTC), request_id="b", route="predict", status=400,
                 latency_ms=1, error_code="bad_request")
    table = pq.read_table(files(store)[0])
    assert table.column("zipcode").to_pylist() == f["zipcode"].tolist() + [None]


def test_requests_of_one_batch_share_its_frame(store, house, house_data):
    batch, _ = house.prototype.validate(house_data.drop(columns=["price"]).head(6))
    other, _ = house.prototype.validate(house_data.drop(columns=["price"]).iloc[10:12])
    now = datetime.now(UTC)
    with LogWriter(store, "house", "v1") as w:
        # arrival order differs from row order in the batch; one request's rows are missing
        for rid, rows in [("b", (2, 5)), ("x", None), ("a", (0, 2))]:
            f = other if rows is None else batch
            n = len(f) if rows is None else rows[1] - rows[0]
            w.append(ts=now, request_id=rid, route="predict", status=200, latency_ms=1,
                     frame=f, rows=rows, prediction=np.arange(n, dtype=float))
    got = pq.read_table(files(store)[0]).to_pandas()
    by_id = {rid: g for rid, g in got.groupby("request_id")}
    assert by_id["a"]["sqft_living"].tolist() == batch["sqft_living"][0:2].tolist()
    assert by_id["b"]["sqft_living"].tolist() == batch["sqft_living"][2:5].tolist()
    assert by_id["x"]["sqft_living"].tolist() == other["sqft_living"].tolist()
    assert by_id["b"]["row"].tolist() == [0, 1, 2]
    assert by_id["b"]["prediction"].tolist() == [0.0, 1.0, 2.0]
    assert len(got) == 7
