"""``python -m core monitor`` with right, wrong, empty and hostile arguments."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from monitor_helpers import store_version, write_log

from core.cli.main import main
from core.monitoring.actuals import save_actuals
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture(scope="module")
def board(house_data, house_model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("cli") / "board")
    store = VersionStore(path)
    b = store_version(store, house_model, house_data, "price", "house")
    rows = house_data.iloc[:60].reset_index(drop=True)
    logged = write_log(store, b, rows.drop(columns=["price"]),
                       [T0 + pd.Timedelta(hours=2 * i) for i in range(60)], request_size=2)
    logged["price"] = rows.loc[logged["source_row"], "price"].to_numpy()
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    store.set_alias("house", "production", b.version)
    return path


def test_table_output(board, capsys):
    assert main(["monitor", "house:production", "--window", "day", "--store", board]) == 0
    out = capsys.readouterr().out
    assert "== metrics ==" in out and "rmse" in out and "== drift" in out
    assert "2025-03-03 00:00" in out
    # 12 rows a day: too few to rule drift out, no rules for metrics: no verdict, and why
    assert "status: none yet\n  not enough rows to judge: drift:" in out
    assert "has 12 values in the window of 2025-03-07 00:00 UTC and is judged from" in out
    assert main(["monitor", "house", "--window", "week", "--store", board]) == 0
    status = capsys.readouterr().out.splitlines()[0].rsplit("status: ", 1)[1]
    assert status in {"OK", "WARNING", "ALERT"}  # 60 rows in the week: drift is judged


def test_json_and_csv(board, capsys):
    assert main(["monitor", "house", "--window", "day", "--format", "json", "--store",
                 board]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "house" and len(data["metrics"]) == 5
    assert sum(r["n"] for r in data["metrics"]) == 60
    assert {"rmse", "mae", "r2"} <= set(data["metrics"][0])
    assert data["drift"] and data["traffic"]
    assert main(["monitor", "house", "--window", "day", "--format", "csv", "--what", "metrics",
                 "--since", "2025-03-04", "--until", "2025-03-06", "--store", board]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("window_start,window_end,n,n_actual,rmse")
    assert len(lines) == 3 and lines[1].startswith("2025-03-04T00:00:00Z")


def test_drift_against_a_reference_period(board, capsys):
    # The whole log as the reference of its one week: every column's drift is nil.
    assert main(["monitor", "house", "--window", "week", "--format", "json", "--what", "drift",
                 "--reference", "2025-03-03..2025-03-10", "--store", board]) == 0
    drift = json.loads(capsys.readouterr().out)["drift"]
    assert {r["column"] for r in drift} >= {"bedrooms", "zipcode", "prediction"}
    assert all(r["statistic"] == 0 and not r["drifted"] for r in drift)
    # against the training sample the same week differs
    assert main(["monitor", "house", "--window", "week", "--format", "json", "--what", "drift",
                 "--store", board]) == 0
    drift = json.loads(capsys.readouterr().out)["drift"]
    assert any((r["statistic"] or 0) > 0 for r in drift)


def test_empty_range_says_what_to_do(board, capsys):
    assert main(["monitor", "house", "--since", "2030-01-01", "--store", board]) == 0
    assert "No predictions logged" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["monitor", "nosuch", "--store"], "(?i)not found|no model|unknown|nosuch"),
    (["monitor", "house", "--window", "fortnight", "--store"], "Unknown window"),
    (["monitor", "house", "--since", "last tuesday-ish", "--store"], "Cannot read"),
    (["monitor", "house", "--since", "2025-03-05", "--until", "2025-03-01", "--store"],
     "must be after"),
    (["monitor", "house", "--format", "csv", "--store"], "CSV holds one table"),
    (["monitor", "house@20200101T000000Z-aaaaa", "--store"], "(?i)not found|no version|unknown"),
    (["monitor", "../../etc", "--store"], "(?i)not allowed|invalid|not found|name"),
    (["monitor", "house'; DROP TABLE x; --", "--store"], "(?i)not allowed|invalid|not found"),
    (["monitor", "house", "--window", "1min", "--since", "2000-01-01", "--store"],
     "at most"),
    (["monitor", "house", "--reference", "2025-03-03", "--store"],
     "--reference takes FROM..UNTIL, e.g. 2025-03-01..2025-03-08"),
    (["monitor", "house", "--reference", "2025-03-03..soon", "--store"], "Cannot read"),
])
def test_bad_arguments_give_one_line_errors(board, capsys, argv, message):
    assert main([*argv, board]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert pytest.importorskip("re").search(message, err)


def test_argparse_rejects_unknown_choices(board, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["monitor", "house", "--format", "xml", "--store", board])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["monitor"])


def test_status_command(board, capsys):
    assert main(["monitor-status", "--store", board, "--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert items[0]["model"] == "house" and items[0]["aliases"] == "production"
    assert items[0]["status"] == "none"  # March 2025 is long gone: nothing recent
    assert main(["monitor-status", "--store", board]) == 0
    table = capsys.readouterr().out
    assert "house" in table and "production" in table
    assert "None" not in table and "NaT" not in table  # no window yet reads as blank


def test_status_includes_versions_served_without_an_alias(tmp_path, house_data, house_model,
                                                          capsys):
    """A replica reporting to the board serves a version no alias points at: the status
    lists it; once its heartbeat is gone, it is no longer listed."""
    from core.serving import heartbeat

    path = str(tmp_path / "served")
    store = VersionStore(path)
    b = store_version(store, house_model, house_data, "price", "house")
    assert main(["monitor-status", "--store", path, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["monitor-status", "--store", path]) == 0
    assert "Nothing deployed" in capsys.readouterr().out
    beat = heartbeat.Heartbeat(store, {"model": "house", "version": b.version})
    beat.beat()
    assert heartbeat.served_versions(store) == [("house", b.version)]
    assert main(["monitor-status", "--store", path, "--format", "json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [(i["model"], i["version"], i["aliases"]) for i in items] == [
        ("house", b.version, "")]
    beat.stop()  # a graceful stop removes the record
    assert heartbeat.served_versions(store) == []
    assert main(["monitor-status", "--store", path, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_board_with_garbage_heartbeats_still_gives_the_status(board, capsys):
    from pathlib import Path

    from core.store.paths import replicas_dir

    store = VersionStore(board)
    folder = Path(replicas_dir(store))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "0123456789abcdef.json").write_bytes(b"\x00\xff not json")
    try:
        assert main(["monitor-status", "--store", board, "--format", "json"]) == 0
        items = json.loads(capsys.readouterr().out)
        assert [i["model"] for i in items] == ["house"]
    finally:
        (folder / "0123456789abcdef.json").unlink()


@pytest.mark.process
def test_runs_as_a_module(board):
    res = subprocess.run([sys.executable, "-m", "core", "monitor", "house", "--window", "week",
                          "--format", "json", "--what", "metrics", "--store", board],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["metrics"][0]["n"] == 60
