"""``python -m core score`` and ``actuals`` with right, wrong, empty, huge and hostile input."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import store_version, write_log

from core.cli.main import main
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture(scope="module")
def base(house_data, house_model, tmp_path_factory):
    """A board with the house model and 20 logged rows (requests of 2 rows)."""
    path = tmp_path_factory.mktemp("uploads") / "board"
    store = VersionStore(str(path))
    b = store_version(store, house_model, house_data, "price", "house")
    rows = house_data.iloc[:20].reset_index(drop=True)
    logged = write_log(store, b, rows.drop(columns=["price"]),
                       [T0 + pd.Timedelta(hours=i) for i in range(20)], request_size=2)
    logged["price"] = rows.loc[logged["source_row"], "price"].to_numpy()
    return path, logged


@pytest.fixture()
def board(base, tmp_path):
    path = tmp_path / "board"
    shutil.copytree(base[0], path)
    return str(path), base[1]


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _error(capsys, pattern, *argv):
    code, out, err = _run(capsys, *argv)
    assert code == 1, (out, err)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert re.search(pattern, err), err
    return err


def _new_data(house_data, n=12, start=40):
    rows = house_data.iloc[start:start + n].reset_index(drop=True)
    data = rows.drop(columns=["price"])
    data["when"] = [f"2025-03-04T{h:02d}:00:00Z" for h in range(n)]
    data["truth"] = rows["price"]
    return data


# -- score ----------------------------------------------------------------------------------

def test_score_keeps_rows_that_monitor_shows_by_default(board, house_data, tmp_path, capsys):
    path, _ = board
    csv = tmp_path / "new.csv"
    _new_data(house_data).to_csv(csv, index=False)
    code, out, err = _run(capsys, "score", "house", csv, "--time", "when", "--actual", "truth",
                          "--store", path)
    assert code == 0, err
    assert out.startswith("Scored 12 rows with house@") and "python -m core monitor house" in out
    assert "Saved 12 actuals, each matching a logged prediction." in out
    # monitor reads the log and the scored rows together by default, as the workbench does
    code, out, _ = _run(capsys, "monitor", "house", "--window", "week", "--format", "json",
                        "--what", "metrics", "--store", path)
    week = json.loads(out)["metrics"][0]
    assert code == 0 and week["n"] == 20 + 12 and week["n_actual"] == 12
    _, out, _ = _run(capsys, "monitor", "house", "--window", "week", "--format", "json",
                     "--what", "metrics", "--source", "log", "--store", path)
    assert json.loads(out)["metrics"][0]["n"] == 20
    # Parquet works the same
    pq = tmp_path / "new.parquet"
    _new_data(house_data, start=60).to_parquet(pq)
    assert _run(capsys, "score", "house", pq, "--time", "when", "--store", path)[0] == 0


def test_score_errors_say_what_is_wrong(board, house_data, tmp_path, capsys):
    path, _ = board
    good = tmp_path / "good.csv"
    _new_data(house_data).to_csv(good, index=False)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header = tmp_path / "header.csv"
    header.write_text("when,bedrooms\n")
    binary = tmp_path / "binary.parquet"
    binary.write_bytes(bytes(range(256)) * 64)
    noise = tmp_path / "noise.csv"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    xlsx = tmp_path / "data.xlsx"
    xlsx.write_bytes(b"PK\x03\x04")
    missing = tmp_path / "missing.csv"
    _new_data(house_data).drop(columns=["zipcode"]).to_csv(missing, index=False)
    store = ["--store", path]
    _error(capsys, r"(?i)no model|not found|nosuch", "score", "nosuch", good, "--time", "when",
           *store)
    _error(capsys, r"(?i)not found|no version|does not exist", "score",
           "house@20200101T000000Z-aaaaa", good, "--time", "when", *store)
    _error(capsys, r"--time 'ts' is not a column of the file; its columns are bedrooms, ",
           "score", "house", good, "--time", "ts", *store)
    _error(capsys, r"--actual 'price' is not a column", "score", "house", good, "--time",
           "when", "--actual", "price", *store)
    _error(capsys, r"is empty \(0 bytes\); it needs a header row", "score", "house", empty,
           "--time", "when", *store)
    _error(capsys, r"has no rows", "score", "house", header, "--time", "when", *store)
    _error(capsys, r"cannot be read as Parquet .*export it again as Parquet", "score", "house",
           binary, "--time", "when", *store)
    _error(capsys, r"cannot be read as CSV|is not a column of the file", "score", "house", noise,
           "--time", "when", *store)
    _error(capsys, r"neither CSV nor Parquet; upload a \.csv or \.parquet", "score", "house",
           xlsx, "--time", "when", *store)
    _error(capsys, r"does not exist; check the path", "score", "house", tmp_path / "no.csv",
           "--time", "when", *store)
    _error(capsys, r"zipcode", "score", "house", missing, "--time", "when", *store)
    with pytest.raises(SystemExit) as exc:  # --time is required
        main(["score", "house", str(good), "--store", path])
    assert exc.value.code == 2
    assert not (VersionStore(path).fs.exists(f"{path}/.fixative/scored"))


def test_score_hostile_and_huge_cells(board, house_data, tmp_path, capsys):
    path, _ = board
    data = _new_data(house_data, n=4)
    data["zipcode"] = ["=cmd|' /C calc'!A0", "@SUM(1)", "ключ\x00", "9" * 200_000]
    data["=HYPERLINK(\"http://x\",\"y\")"] = 1  # an extra column: dropped, and said so
    wide = pd.DataFrame({f"extra{i}": [i] * len(data) for i in range(2000)})  # a wide file
    data = pd.concat([data, wide], axis=1)
    csv = tmp_path / "hostile.csv"
    data.to_csv(csv, index=False)
    code, out, err = _run(capsys, "score", "house", csv, "--time", "when", "--store", path)
    assert code == 0, err
    assert "Scored 4 rows" in out and "extra columns dropped" in out and "and 1982 more" in out
    assert re.search(r"note: .*zipcode", out)  # categories never seen in training
    # a bad time in one row is an error naming it; nothing more is kept
    data.loc[2, "when"] = "=NOW()"
    data.to_csv(csv, index=False)
    before = sorted(VersionStore(path).fs.glob(f"{path}/.fixative/scored/**/*.parquet"))
    _error(capsys, r"when", "score", "house", csv, "--time", "when", "--store", path)
    assert sorted(VersionStore(path).fs.glob(f"{path}/.fixative/scored/**/*.parquet")) == before


# -- actuals --------------------------------------------------------------------------------

def test_actuals_upload_and_correction(board, tmp_path, capsys):
    path, logged = board
    csv = tmp_path / "truth.csv"
    logged[["request_id", "row", "price"]].to_csv(csv, index=False)
    code, out, err = _run(capsys, "actuals", "house", csv, "--key", "request_id", "--actual",
                          "price", "--row", "row", "--store", path)
    assert code == 0, err
    assert out.strip() == "Saved 20 actuals, each matching a logged prediction."
    # an empty value retracts, a number corrects
    fix = logged[["request_id", "row"]].iloc[:2].assign(price=["", "5"])
    fix.to_csv(csv, index=False)
    code, out, _ = _run(capsys, "actuals", "house", csv, "--key", "request_id", "--actual",
                        "price", "--row", "row", "--store", path)
    assert code == 0 and "Saved 1 actuals and retracted 1" in out
    _, out, _ = _run(capsys, "monitor", "house", "--window", "week", "--format", "json",
                     "--what", "metrics", "--store", path)
    assert json.loads(out)["metrics"][0]["n_actual"] == 19


def test_actuals_on_a_logged_column_with_rows(board, tmp_path, capsys):
    path, logged = board
    pq = tmp_path / "truth.parquet"
    logged[["zipcode", "row", "price"]].drop_duplicates(["zipcode", "row"]).to_parquet(pq)
    code, out, err = _run(capsys, "actuals", "house", pq, "--key", "zipcode", "--on", "zipcode",
                          "--row", "row", "--actual", "price", "--store", path)
    assert code == 0, err
    assert "each matching a logged prediction" in out
    assert (VersionStore(path).fs.exists(f"{path}/.fixative/actuals/house/by-zipcode+row"))


def test_actuals_errors_say_what_is_wrong_and_keep_nothing(board, tmp_path, capsys):
    path, logged = board
    good = tmp_path / "truth.csv"
    logged[["request_id", "row", "price"]].to_csv(good, index=False)
    dup = tmp_path / "dup.csv"
    pd.concat([logged, logged])[["request_id", "row", "price"]].to_csv(dup, index=False)
    blank = tmp_path / "blank.csv"
    logged[["request_id", "row"]].assign(price="").to_csv(blank, index=False)
    words = tmp_path / "words.csv"
    logged[["request_id", "row"]].assign(price="=1+2").to_csv(words, index=False)
    negative = tmp_path / "negative.csv"
    logged[["request_id"]].assign(row=-1, price=1.0).to_csv(negative, index=False)
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16)
    store = ["--store", path]
    args = ["--key", "request_id", "--actual", "price", "--row", "row", *store]
    _error(capsys, r"(?i)no model|not found", "actuals", "nosuch", good, *args)
    _error(capsys, r"--key 'id' is not a column of the file; its columns are request_id, row, "
                   r"price", "actuals", "house", good, "--key", "id", "--actual", "price",
           *store)
    _error(capsys, r"--row 'r' is not a column", "actuals", "house", good, "--key",
           "request_id", "--actual", "price", "--row", "r", *store)
    _error(capsys, r"'sqft' is not a logged column; match on request_id or one of the model's "
                   r"inputs: request_id, bedrooms", "actuals", "house", good, *args, "--on",
           "sqft")
    _error(capsys, r"same key and row \('request_id', 'row'\) more than once: .* and 15 more "
                   r"\(20 keys in all.*nothing was saved", "actuals", "house", dup, *args)
    _error(capsys, r"has no values\. To retract .* --retract", "actuals", "house", blank, *args)
    _error(capsys, r"not numbers in rows \[0, 1, .*'=1\+2'", "actuals", "house", words, *args)
    _error(capsys, r"must hold whole numbers from 0", "actuals", "house", negative, *args)
    _error(capsys, r"is empty \(0 bytes\)", "actuals", "house", empty, *args)
    _error(capsys, r"cannot be read as CSV|is not a column of the file", "actuals", "house",
           binary, *args)
    # a column name with a line break or a terminal code stays on one visible line
    err = _error(capsys, r"--key 'a\\nb\\x1b\[31m' is not a column", "actuals", "house", good,
                 "--key", "a\nb\x1b[31m", "--actual", "price", *store)
    assert "\x1b" not in err
    assert not VersionStore(path).fs.exists(f"{path}/.fixative/actuals")
    code, out, _ = _run(capsys, "actuals", "house", blank, *args, "--retract")
    assert code == 0 and "retracted 20" in out
