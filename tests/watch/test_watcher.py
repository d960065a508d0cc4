"""The watcher on a real board: scheduled evaluations, notifications on status changes
only, restarts without re-alerting or missed ticks, and two watchers at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from monitor_helpers import store_version, write_log
from watch_helpers import receiver

from core.cli.main import main
from core.monitoring import thresholds
from core.monitoring.actuals import save_actuals
from core.store.versionstore import VersionStore
from core.watch import config, watcher

T0 = pd.Timestamp("2025-03-03", tz="UTC")
REPO = Path(__file__).resolve().parents[2]
# ticks every hour at minute 0; the rows are logged on 2025-03-03, judged for 3 days
NOW = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)


def alert_rule(store, level: float) -> None:
    thresholds.save(store, "house", thresholds.Settings(
        window="day", min_rows=10, rules=[thresholds.Rule("rmse", warning=level,
                                                          alert=level * 2)]))


def _make_board(path, house_data, house_model):
    store = VersionStore(str(path))
    b = store_version(store, house_model, house_data, "price", "house")
    rows = house_data.iloc[:40].reset_index(drop=True)
    logged = write_log(store, b, rows.drop(columns=["price"]),
                       [T0 + pd.Timedelta(minutes=10 * i) for i in range(40)], request_size=10)
    logged["price"] = rows.loc[logged["source_row"], "price"].to_numpy() + 100_000
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    store.set_alias("house", "production", b.version)
    alert_rule(store, 1.0)  # any error is an alert
    config.save(store, "house", config.WatchConfig(
        schedule="0 * * * *", backoff=0, retries=2,
        channels=[config.Channel("ops", "webhook", "OPS_HOOK")]))
    return store, b


@pytest.fixture
def board(tmp_path, house_data, house_model, monkeypatch):
    monkeypatch.setenv("FIXATIVE_WORKBENCH_URL", "http://wb.example:8501/")
    return _make_board(tmp_path / "board", house_data, house_model)


@pytest.fixture(scope="module")
def shared_board(tmp_path_factory, house_data, house_model):
    """A board the tests only read (refused commands change nothing)."""
    return _make_board(tmp_path_factory.mktemp("watch") / "board", house_data, house_model)


def test_a_change_is_sent_once_and_a_restart_does_not_send_it_again(board, monkeypatch):
    store, b = board
    with receiver() as rec:
        monkeypatch.setenv("OPS_HOOK", rec.url)
        (first,) = watcher.run_once(store, now=NOW)
        assert [v["status"] for v in first["versions"]] == ["alert"]
        (sent,) = rec.payloads()
        assert sent["status"] == "alert" and sent["previous"] is None
        assert sent["model"] == "house" and sent["version"] == b.version
        assert sent["metric"] == "rmse" and sent["value"] > 2.0
        assert sent["threshold"] == {"warning": 1.0, "alert": 2.0, "direction": "above"}
        assert sent["links"]["monitor"] == (f"http://wb.example:8501/monitor?model=house&"
                                            f"version={b.version}")
        assert sent["window"] == "day" and sent["window_start"].startswith("2025-03-03")
        # same time again: the tick is done, nothing is evaluated or sent
        assert watcher.run_once(store, now=NOW) == []
        # a new process (a restart) three ticks later: each missed tick is evaluated,
        # the status is still alert, nothing is sent
        again = VersionStore(store.url)
        later = watcher.run_once(again, now=NOW + timedelta(hours=3, minutes=20))
        assert [r["tick"][11:16] for r in later] == ["11:00", "12:00", "13:00"]
        assert len(rec.payloads()) == 1
        # back to ok: one notification, ok after alert
        alert_rule(store, 1e9)
        (back,) = watcher.run_once(again, now=NOW + timedelta(hours=4))
        assert back["versions"][0]["status"] == "ok"
        assert [(p["previous"], p["status"]) for p in rec.payloads()] == [
            (None, "alert"), ("alert", "ok")]
    history = watcher.evaluations(store, "house")
    assert len(history) == 5 and history[0]["tick"].startswith("2025-03-04T14:00")
    assert history[0]["notifications"][0]["delivered"] is True
    assert "pid" in history[0]["who"]


def test_an_undeliverable_change_is_recorded_and_dead_lettered(board, monkeypatch):
    store, _ = board
    with receiver() as rec:
        rec.fail_first = 100
        monkeypatch.setenv("OPS_HOOK", rec.url)
        (r,) = watcher.run_once(store, now=NOW)
    (n,) = r["notifications"]
    assert not n["delivered"] and n["attempts"] == 3 and "HTTP 503" in n["error"]
    from core.watch.notify import dead_letters

    assert len(dead_letters(store, "house")) == 1


def test_a_first_tick_another_watcher_holds_is_left_to_it(board, monkeypatch):
    store, _ = board
    with receiver() as rec:
        monkeypatch.setenv("OPS_HOOK", rec.url)
        assert watcher.claim(store, "house", NOW)  # another watcher's first, still running
        assert watcher.run_once(store, now=NOW + timedelta(hours=1)) == []
        assert rec.payloads() == []


def test_a_tick_another_watcher_holds_is_left_to_it(board, monkeypatch):
    store, _ = board
    with receiver() as rec:
        monkeypatch.setenv("OPS_HOOK", rec.url)
        (done,) = watcher.run_once(store, now=NOW - timedelta(hours=1))
        # another watcher holds the next tick: the tick after waits for its result
        assert watcher.claim(store, "house", NOW)
        assert watcher.run_once(store, now=NOW + timedelta(hours=1)) == []
        assert len(rec.payloads()) == 1


def test_a_claim_whose_watcher_died_is_skipped_after_the_lease(board, monkeypatch):
    store, _ = board
    folder = store.path(".fixative", "watch", "house")
    store.fs.makedirs(folder, exist_ok=True)
    died = datetime.now(UTC) - timedelta(seconds=watcher.LEASE_SECONDS + 60)
    with store.fs.open(f"{folder}/{watcher.tick_id(NOW)}.claim", "wb") as f:
        f.write(json.dumps({"who": "gone", "at": died.isoformat()}).encode())
    with receiver() as rec:
        monkeypatch.setenv("OPS_HOOK", rec.url)
        (r,) = watcher.run_once(store, now=NOW + timedelta(hours=1))
    assert r["tick"].startswith("2025-03-04T11:00") and len(rec.payloads()) == 1


def test_models_without_an_alias_or_disabled_are_not_watched(board):
    store, _ = board
    cfg = config.load(store, "house")
    cfg.enabled = False
    config.save(store, "house", cfg)
    assert watcher.run_once(store, now=NOW) == []


@pytest.mark.process
def test_two_watch_processes_at_once_send_one_notification(board, monkeypatch):
    store, _ = board
    with receiver() as rec:
        env = {**os.environ, "OPS_HOOK": rec.url, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "core", "watch", "--once", "--now", "2025-03-04T10:00Z",
               "--store", store.url]
        procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=240) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        assert len(rec.payloads()) == 1, outs
    assert len(watcher.evaluations(store, "house")) == 1


def test_cli_set_test_and_history(board, monkeypatch, capsys):
    store, _ = board
    assert main(["watch-set", "house", "--schedule", "*/15 * * * *", "--apprise",
                 "team=TEAM_URL", "--store", store.url]) == 0
    out = capsys.readouterr().out
    assert "checked */15 * * * * (UTC)" in out and "team (apprise, URL in $TEAM_URL)" in out
    with receiver() as rec:
        monkeypatch.setenv("OPS_HOOK", rec.url)
        monkeypatch.setenv("TEAM_URL", rec.url.replace("http://", "json://"))
        assert main(["watch-test", "house", "--store", store.url]) == 0
        assert len(rec.payloads("test")) == 1  # the webhook's; apprise posts its own shape
        assert len(rec.bodies) == 2
    assert "ops (webhook, $OPS_HOOK): delivered" in capsys.readouterr().out
    monkeypatch.delenv("TEAM_URL")
    assert main(["watch-test", "house", "--store", store.url]) == 1
    assert "team (apprise, $TEAM_URL): failed: $TEAM_URL is not set" in capsys.readouterr().out
    assert main(["watch", "--once", "--now", "2025-03-04T10:00Z", "--store", store.url]) == 0
    assert "house at 2025-03-04T10:00:00+00:00:" in capsys.readouterr().out
    assert main(["watch-history", "house", "--format", "json", "--store", store.url]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert len(hist["evaluations"]) == 1
    # the board holds the variable names, never a URL
    for path in store.fs.find(store.path(".fixative")):
        with store.fs.open(path, "rb") as f:
            assert b"127.0.0.1" not in f.read()


@pytest.mark.parametrize("argv, message", [
    (["watch-set", "house", "--schedule", "every hour"], "is not a cron schedule"),
    (["watch-set", "house", "--schedule", "* * * * * * * *"], "is not a cron schedule"),
    (["watch-set", "house", "--webhook", "https://hooks.example/T/B/secret"], "CHANNEL=ENV_VAR"),
    (["watch-set", "house", "--webhook", "ops=https://hooks.example/x"],
     "not an environment variable name"),
    (["watch-set", "house", "--remove", "nope"], "has no channel 'nope'"),
    (["watch-set", "house", "--retries", "99"], "retries must be"),
    (["watch-set", "house", "--backoff", "nan"], "backoff must be"),
    (["watch-set", "nosuch", "--schedule", "0 * * * *"], "nosuch"),
    (["watch", "--now", "2025-03-04"], "--now goes with --once"),
    (["watch-history", "house", "--limit", "0"], "--limit must be at least 1"),
])
def test_cli_refuses_bad_input_and_keeps_the_settings(shared_board, capsys, argv, message):
    store, _ = shared_board
    before = config.load(store, "house")
    assert main([*argv, "--store", store.url]) == 1
    assert message in capsys.readouterr().err
    assert config.load(store, "house") == before
