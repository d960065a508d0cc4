"""Parquet uploads are sized up before they are read: small files that hold huge tables
(run-length encoded columns, one long string every row repeats) are refused with what they
would take, and ordinary files read exactly as pandas reads them."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.errors import InvalidArgument
from core.monitoring.actuals import MAX_UPLOAD_ROWS, read_table
from core.store.tables import MAX_TABLE_BYTES_ENV, check_parquet
from core.store.upload import read_sample


def parquet(table: pa.Table, **kw) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", **kw)
    return out.getvalue()


def test_a_wide_run_length_bomb_is_refused_before_it_is_read():
    """~5 MB on disk, 4.8 GB once read: 6,000 columns of 100,000 zeros."""
    zeros = pa.array(np.zeros(100_000, dtype=np.int64))
    data = parquet(pa.table({f"c{i}": zeros for i in range(6_000)}))
    assert len(data) < 10 * 2**20
    with pytest.raises(InvalidArgument) as info:
        read_table(data, "wide.parquet")
    message = info.value.message
    assert message.startswith("The file 'wide.parquet' would take about 4.5 GiB in memory")
    assert "(100,000 rows x 6,000 columns)" in message and MAX_TABLE_BYTES_ENV in message
    with pytest.raises(InvalidArgument, match="would take about 4.5 GiB"):
        read_sample(data, "wide.parquet")


def test_one_long_string_repeated_by_every_row_is_counted_without_expanding_it():
    """A few kilobytes: one 300 KB dictionary value that 20,000 rows point at (6 GB of
    text once expanded); the check counts it from the dictionary."""
    value = "x" * 300_000
    column = pa.DictionaryArray.from_arrays(pa.array(np.zeros(20_000, dtype=np.int32)),
                                            pa.array([value]))
    data = parquet(pa.table({"note": column, "n": pa.array(np.arange(20_000))}))
    assert len(data) < 100_000
    before = pa.total_allocated_bytes()
    with pytest.raises(InvalidArgument, match=r"would take about 5\.6 GiB in memory once read "
                                              r"\(20,000 rows x 2 columns\)"):
        read_table(data, "notes.parquet", "actuals file")
    assert pa.total_allocated_bytes() - before < 2**20  # nothing held on to


def test_the_limit_is_a_setting(monkeypatch):
    frame = pd.DataFrame({"a": np.arange(1_000), "b": ["word"] * 1_000})
    data = parquet(pa.Table.from_pandas(frame))
    monkeypatch.setenv(MAX_TABLE_BYTES_ENV, "10000")
    with pytest.raises(InvalidArgument, match=r"than the 9\.8 KiB an uploaded table may take"):
        read_table(data, "small.parquet")
    monkeypatch.setenv(MAX_TABLE_BYTES_ENV, "20000")  # 16,000 for the values + 4,000 of text
    pd.testing.assert_frame_equal(read_table(data, "small.parquet"), frame)
    for bad in ("lots", "-1", "1e9", "nan", ""):
        monkeypatch.setenv(MAX_TABLE_BYTES_ENV, bad)
        if bad:
            with pytest.raises(InvalidArgument, match=f"{MAX_TABLE_BYTES_ENV} must be a whole "
                                                      "number of bytes"):
                read_table(data, "small.parquet")


def test_too_many_rows_are_refused_from_the_footer():
    data = parquet(pa.table({"a": pa.array(np.zeros(MAX_UPLOAD_ROWS + 1, dtype=np.int8))}))
    with pytest.raises(InvalidArgument, match=f"has {MAX_UPLOAD_ROWS + 1:,} rows; at most "
                                              f"{MAX_UPLOAD_ROWS:,} per upload"):
        read_table(data, "long.parquet")


@pytest.mark.parametrize("column", [
    pa.array([[1, 2], [3]]),
    pa.array([{"a": 1}, {"a": 2}]),
    pa.array([[("k", 1)], [("j", 2)]], type=pa.map_(pa.string(), pa.int64())),
])
def test_nested_columns_are_refused(column):
    data = parquet(pa.table({"id": [1, 2], "odd": column}))
    with pytest.raises(InvalidArgument, match="nested values in column 'odd'.*one value per "
                                              "cell"):
        read_table(data, "nested.parquet")


def test_ordinary_files_read_as_pandas_reads_them():
    frame = pd.DataFrame({
        "price": [1.5, None, 3.25], "n": [1, 2, 3], "zip": ["98115", None, "98103"],
        "kind": pd.Categorical(["a", "b", "a"]), "ok": [True, False, True],
        "at": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
    })
    data = parquet(pa.Table.from_pandas(frame))
    check_parquet(data, "The file")  # passes
    pd.testing.assert_frame_equal(read_table(data, "ok.parquet"),
                                  pd.read_parquet(io.BytesIO(data)))
    pd.testing.assert_frame_equal(read_sample(data, "ok.parquet"),
                                  pd.read_parquet(io.BytesIO(data)))


def test_two_columns_of_one_name_are_refused():
    """pandas refuses them too; the check must not count one and let the other through."""
    text = pa.DictionaryArray.from_arrays(pa.array(np.zeros(100, dtype=np.int32)),
                                          pa.array(["x" * 1000]))
    data = parquet(pa.Table.from_arrays([pa.array(["a"] * 100), text], names=["n", "n"]))
    with pytest.raises(InvalidArgument, match="more than one column named 'n'; give each "
                                              "column its own name"):
        read_table(data, "twice.parquet")


@pytest.mark.parametrize("data", [b"PAR1", b"PAR1" + b"\0" * 100 + b"PAR1", b"not parquet"])
def test_damaged_files_get_the_readers_message(data):
    with pytest.raises(InvalidArgument, match="cannot be read as Parquet"):
        read_table(data, "bad.parquet")
    with pytest.raises(InvalidArgument, match="cannot be read as Parquet"):
        read_sample(data, "bad.parquet")


def test_a_truncated_file_is_refused_by_the_reader():
    data = parquet(pa.table({"a": list(range(1000)), "b": [str(i) for i in range(1000)]}))
    with pytest.raises(InvalidArgument, match="cannot be read as Parquet"):
        read_table(data[: len(data) // 2], "cut.parquet")
