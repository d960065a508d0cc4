"""Heartbeat records: what a replica writes, settings, and hostile files on the board."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from core.errors import InvalidArgument
from core.serving import heartbeat
from core.serving.metrics import ServerMetrics
from core.store.paths import replica_file, replicas_dir
from core.store.versionstore import VersionStore
from core.times import span_seconds


@pytest.fixture
def store(tmp_path):
    return VersionStore(tmp_path / "board")


def beat(store, **fields) -> heartbeat.Heartbeat:
    hb = heartbeat.Heartbeat(store, {"model": "house", "version": "v1", **fields},
                             lambda: {"requests": 5, "rows": 40, "errors": 1}, every=15)
    hb.beat()
    return hb


def put(store, name: str, data: bytes) -> None:
    store.fs.makedirs(replicas_dir(store), exist_ok=True)
    store.fs.pipe_file(f"{replicas_dir(store)}/{name}", data)


def test_a_beat_writes_a_small_record_that_reads_back(store):
    hb = beat(store, alias="production", port=8080, engine="python")
    raw = store.fs.cat_file(replica_file(store, hb.replica_id))
    assert len(raw) < 1024
    doc = json.loads(raw)
    assert doc["pid"] == os.getpid() and doc["requests"] == 5 and doc["interval"] == 15
    [replica], notes = heartbeat.read_replicas(store)
    assert notes == []
    assert (replica.model, replica.version, replica.alias, replica.port) == (
        "house", "v1", "production", 8080)
    assert (replica.requests, replica.rows, replica.errors) == (5, 40, 1)
    assert replica.health == "fresh"
    # no temporary file left behind
    assert [p.rsplit("/", 1)[-1] for p in store.fs.ls(replicas_dir(store))] == [
        f"{hb.replica_id}.json"]
    hb.stop()
    assert heartbeat.read_replicas(store) == ([], [])


def test_long_fields_are_cut_so_the_record_stays_bounded(store):
    hb = beat(store, alias="a" * 10_000, url="u" * 10_000)
    raw = store.fs.cat_file(replica_file(store, hb.replica_id))
    assert len(raw) <= heartbeat.MAX_RECORD_BYTES
    [replica], _ = heartbeat.read_replicas(store)
    assert replica.alias == "a" * heartbeat.MAX_TEXT


def test_a_record_goes_stale_after_the_expiry(store):
    beat(store)
    later = datetime.now(UTC) + timedelta(seconds=61)
    [replica], _ = heartbeat.read_replicas(store, now=later, stale=60)
    assert replica.health == "stale" and replica.age_seconds > 60
    # never fresher than two of the writer's own intervals
    [replica], _ = heartbeat.read_replicas(store, now=datetime.now(UTC) + timedelta(seconds=20),
                                           stale=5)
    assert replica.health == "fresh"


def test_a_record_from_the_future_is_judged_by_the_boards_clock(store):
    future = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    doc = {"kind": heartbeat.KIND, "id": "forged", "model": "m", "version": "v",
           "last_seen": future, "interval": 1}
    put(store, "forged.json", json.dumps(doc).encode())
    [replica], _ = heartbeat.read_replicas(store, now=datetime.now(UTC) + timedelta(hours=1),
                                           stale=60)
    assert replica.health == "stale"


@pytest.mark.parametrize("name,data,why", [
    ("garbage.json", b"\x00\xff not json", "not JSON"),
    ("list.json", b"[1, 2, 3]", "not a replica heartbeat"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "larger than"),
    ("huge.json", b'{"kind": "fixative-replica", "x": "' + b"a" * 10**6 + b'"}', "larger than"),
    ("other.json", json.dumps({"kind": "fixative-replica", "id": "victim", "model": "m",
                               "version": "v", "last_seen": "2026-01-01T00:00:00Z"}).encode(),
     "its id does not match"),
    ("partial.json", json.dumps({"kind": "fixative-replica", "id": "partial",
                                 "model": "m"}).encode(), "missing"),
    ("badtime.json", json.dumps({"kind": "fixative-replica", "id": "badtime", "model": "m",
                                 "version": "v", "last_seen": "yesterday-ish"}).encode(),
     "missing"),
])
def test_hostile_files_are_skipped_with_a_note(store, name, data, why):
    good = beat(store)
    put(store, name, data)
    replicas, notes = heartbeat.read_replicas(store)
    assert [r.id for r in replicas] == [good.replica_id]
    [note] = notes
    assert name in note and why in note


def test_odd_names_and_wrong_types_do_not_break_the_listing(store):
    beat(store)
    put(store, "a%2f..%2fetc.json", b"{}")
    put(store, ".hidden.tmp", b"{}")  # a writer's temporary file: not listed, no note
    put(store, "notes.txt", b"hello")
    store.fs.makedirs(f"{replicas_dir(store)}/a-folder.json", exist_ok=True)
    doc = {"kind": heartbeat.KIND, "id": "typed", "model": "m", "version": "v",
           "last_seen": datetime.now(UTC).isoformat(), "pid": "1; rm -rf /",
           "requests": -5, "rows": 1e300, "errors": True, "port": [1], "alias": {"a": 1}}
    put(store, "typed.json", json.dumps(doc).encode())
    replicas, notes = heartbeat.read_replicas(store)
    typed = next(r for r in replicas if r.id == "typed")
    assert (typed.pid, typed.requests, typed.rows, typed.errors, typed.port, typed.alias) == (
        None, None, None, None, None, None)
    assert len(notes) == 2 and all("not a heartbeat file name" in n for n in notes)


def test_many_files_are_capped(store, monkeypatch):
    monkeypatch.setattr(heartbeat, "MAX_REPLICAS", 3)
    for _ in range(5):
        beat(store)
    replicas, notes = heartbeat.read_replicas(store)
    assert len(replicas) == 3 and "showing the newest 3" in notes[0]


def test_prune_removes_only_old_records(store):
    old = {"kind": heartbeat.KIND, "id": "old", "model": "m", "version": "v",
           "last_seen": "2020-01-01T00:00:00Z"}
    put(store, "old.json", json.dumps(old).encode())
    fresh = beat(store)
    assert heartbeat.prune(store, older_than=3600) == ["old"]
    assert [r.id for r in heartbeat.read_replicas(store)[0]] == [fresh.replica_id]


def test_a_failing_board_never_stops_the_beat(store):
    store.fs.makedirs(store.path(".fixative"), exist_ok=True)
    store.fs.pipe_file(replicas_dir(store), b"a file where a folder should be")
    hb = heartbeat.Heartbeat(store, {"model": "m", "version": "v"}, every=1)
    hb.start()
    hb.stop()  # returns: the failed writes were logged, not raised
    assert hb.beats == 0


@pytest.mark.parametrize("value", ["abc", "-1", "0.5", "nan", "inf", "1e12"])
def test_bad_interval_settings_are_refused_clearly(monkeypatch, value):
    monkeypatch.setenv("FIXATIVE_HEARTBEAT_SECONDS", value)
    with pytest.raises(InvalidArgument, match="FIXATIVE_HEARTBEAT_SECONDS must be"):
        heartbeat.interval()
    monkeypatch.setenv("FIXATIVE_HEARTBEAT_STALE_SECONDS", value)
    with pytest.raises(InvalidArgument, match="FIXATIVE_HEARTBEAT_STALE_SECONDS must be"):
        heartbeat.stale_after()


def test_interval_settings(monkeypatch):
    assert heartbeat.interval() == heartbeat.INTERVAL
    monkeypatch.setenv("FIXATIVE_HEARTBEAT_SECONDS", "0")
    assert heartbeat.interval() == 0
    monkeypatch.setenv("FIXATIVE_HEARTBEAT_STALE_SECONDS", "90")
    assert heartbeat.stale_after() == 90


def test_counts_come_from_the_processes_own_metrics():
    metrics = ServerMetrics("m", "v")
    assert isinstance(metrics.registry, CollectorRegistry)
    for route in ("/predict", "/predict", "/invocations", "/healthz", "/ping"):
        metrics.observe(route, 200, 0.01)
    metrics.observe("/predict", 422, 0.01)  # bad input: logged, counted
    metrics.observe("/predict", 401, 0.01)  # no token: never reached the log
    metrics.observe("/predict", 405, 0.01)  # GET /predict: neither
    metrics.rows.labels("predict").inc(7)
    metrics.errors.labels("predict", "invalid_input").inc()
    assert heartbeat.metrics_counts(metrics)() == {"requests": 4, "rows": 7, "errors": 1}


@pytest.mark.parametrize("text,seconds", [("30min", 1800), ("2h", 7200), ("1d", 86400),
                                          ("45", 45)])
def test_spans(text, seconds):
    assert span_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5m", "-3", "1d ago", "9" * 50])
def test_bad_spans(text):
    with pytest.raises(InvalidArgument, match="must be a span|ambiguous"):
        span_seconds(text, "--older-than")
