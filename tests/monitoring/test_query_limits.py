"""The time and memory limits of monitoring queries (monitoring.limits): a query that hits
them stops with the reason, and the other parts of a report and the other models carry on."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from monitor_helpers import store_version, write_log

from core.cli.main import main
from core.monitoring import limits
from core.monitoring.report import build
from core.monitoring.thresholds import status
from core.store.paths import log_dir
from core.store.predlog import write_segment
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")
# Never finishes: 10^13 pairs.
ENDLESS = "SELECT count(*) FROM range(10000000) a, range(1000000) b WHERE a.range + b.range < 0"


def test_a_slow_query_stops_and_the_connection_goes_on(monkeypatch):
    monkeypatch.setenv(limits.SECONDS_ENV, "0.2")
    con = limits.LimitedConnection(duckdb.connect())
    with pytest.raises(duckdb.InterruptException) as exc:
        con.execute(ENDLESS).fetchall()
    assert limits.reason(exc.value) == (
        "stopped after 0.2 s, the time limit of a monitoring query "
        "(FIXATIVE_MONITOR_QUERY_SECONDS); raise the limit or narrow the range (since/until)")
    assert con.execute("SELECT 42").fetchall() == [(42,)]
    con.close()


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_bad_settings_are_refused(monkeypatch, value):
    monkeypatch.setenv(limits.SECONDS_ENV, value)
    with pytest.raises(Exception, match="FIXATIVE_MONITOR_QUERY_SECONDS"):
        limits.query_seconds()


@pytest.fixture(scope="module")
def boards(house_data, house_model, tmp_path_factory):
    """Two models: 'big' with 3 million logged rows, 'small' with 20."""
    store = VersionStore(str(tmp_path_factory.mktemp("limits") / "board"))
    small = store_version(store, house_model, house_data, "price", "small")
    big = store_version(store, house_model, house_data, "price", "big")
    rows = house_data.iloc[:20].drop(columns=["price"])
    ts = [T0 + pd.Timedelta(hours=i) for i in range(20)]
    write_log(store, small, rows, ts)
    write_log(store, big, rows, ts)
    seg = store.fs.glob(f"{log_dir(store, 'big')}/**/*.parquet")[0]
    table = pq.read_table(seg)
    many = table.take(np.tile(np.arange(table.num_rows), 150_000))
    # each row its own time (microseconds apart), as served rows have
    us = T0.value // 1000 + np.arange(many.num_rows, dtype=np.int64)
    many = many.set_column(0, "ts", pa.array(us, pa.timestamp("us", tz="UTC")))
    write_segment(store, "big", big.version, "2025-03-03", "many-000001", many)
    store.set_alias("small", "production", small.version)
    store.set_alias("big", "production", big.version)
    return store


def test_a_report_part_that_hits_the_limit_says_why(boards, monkeypatch, capsys):
    monkeypatch.setenv(limits.SECONDS_ENV, "0.001")
    report = build(boards, "big", window="week")
    assert report.failed["metrics"].startswith("stopped after 0.001 s, the time limit")
    assert report.headline.status == "none"
    assert report.headline.message.startswith("not judged: the metrics stopped after 0.001 s")
    assert any(n.startswith("metrics stopped after") for n in report.notes)
    assert list(report.metrics.columns)[:4] == ["window_start", "window_end", "n", "n_actual"]
    # the command line prints the same, and exits 0
    assert main(["monitor", "big", "--window", "week", "--store", boards.url]) == 0
    out = capsys.readouterr().out
    assert "status: none yet\n  not judged: the metrics stopped after 0.001 s" in out
    assert "note: metrics stopped after 0.001 s" in out
    # with room, the same report is whole
    monkeypatch.setenv(limits.SECONDS_ENV, "600")
    whole = build(boards, "big", window="week")
    assert not whole.failed and int(whole.metrics["n"].sum()) == 20 * 150_001


def test_one_model_over_the_limit_never_holds_the_others(boards, monkeypatch):
    monkeypatch.setenv(limits.SECONDS_ENV, "0.001")
    found = {s.model: s for s in status(boards, now=T0 + pd.Timedelta(days=1))}
    assert set(found) == {"big", "small"}
    assert found["big"].status == "none"
    assert found["big"].message.startswith("not judged: a monitoring query stopped after 0.001 s")
