"""A fleet of real ``serve`` replicas on an S3 board (moto on loopback): heartbeats appear,
count what the prediction log counts, go stale after SIGKILL and vanish on a graceful stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
import store_fixtures
from server_helpers import answers, stop, wait_for
from store_fixtures import S3_KEYS

from core.deploy import fleet
from core.model.bundle import bundle
from core.serving import heartbeat
from core.serving.netcheck import free_port
from core.store.paths import log_dir, replicas_dir, segment_files
from core.store.versionstore import VersionStore

pytestmark = [pytest.mark.process, pytest.mark.s3]
s3_server = store_fixtures.s3_server
ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 3
STALE = 4.0



class Replica:
    def __init__(self, board: str, env: dict[str, str], folder: Path) -> None:
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = folder / f"serve-{self.port}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "core", "serve", "house:production", "--port",
                 str(self.port), "--store", board],
                cwd=ROOT, env=dict(env, FIXATIVE_INDEX_DIR=str(folder / f"idx-{self.port}")),
                stdout=out, stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        return answers(self.proc, self.url, self.output)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return stop(self.proc, sig)


@pytest.fixture(scope="module")
def board_env(s3_server, tmp_path_factory):
    import s3fs

    bucket = f"fleet-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing").mkdir(bucket)
    env = dict(S3_KEYS, FIXATIVE_S3_ENDPOINT_URL=s3_server,
               FIXATIVE_INDEX_DIR=str(tmp_path_factory.mktemp("fleet-index")),
               FIXATIVE_HEARTBEAT_SECONDS="1", FIXATIVE_HEARTBEAT_STALE_SECONDS=str(STALE))
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield f"s3://{bucket}/team", env


@pytest.fixture(scope="module")
def store(board_env, house_model, house_data):
    board = VersionStore(board_env[0])
    info = board.write(bundle(house_model, house_data.drop(columns="price"), name="house"))
    board.set_alias("house", "production", info.version)
    return board


@pytest.fixture(scope="module")
def replicas(board_env, store, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fleet")
    env = dict(os.environ, PYTHONPATH=str(ROOT), **board_env[1])
    started = [Replica(board_env[0], env, folder) for _ in range(REPLICAS)]
    try:
        for r in started:
            wait_for(r.ready, f"replica on port {r.port}", 90)
        yield started
    finally:
        for r in started:
            r.stop(signal.SIGKILL)


def by_port(store) -> dict[int, heartbeat.Replica]:
    found, notes = heartbeat.read_replicas(store)
    assert notes == []
    return {r.port: r for r in found if r.port is not None}


def log_counts(store, version: str) -> dict[int, tuple[int, int, int]]:
    """(requests, rows predicted, failed requests) in the prediction log, by writer pid."""
    out: dict[int, tuple[int, int, int]] = {}
    for path in segment_files(store, log_dir(store, "house"), [version]):
        with store.fs.open(path, "rb") as f:
            table = pq.read_table(f, columns=["request_id", "status"]).to_pandas()
        pid = int(path.rsplit("/", 1)[-1].split("-")[-3])
        ok = table[table["status"] == 200]
        req, rows, errs = out.get(pid, (0, 0, 0))
        out[pid] = (req + table["request_id"].nunique(), rows + len(ok),
                    errs + int((table["status"] != 200).sum()))
    return out


def test_replicas_report_traffic_health_and_shutdown(replicas, store, house_data, board_env):
    version = store.resolve("house:production")[1]
    ports = {r.port for r in replicas}
    seen = wait_for(lambda: (b := by_port(store)) and ports <= set(b) and b, "3 heartbeats")
    for r in replicas:
        beat = seen[r.port]
        assert (beat.model, beat.version, beat.alias) == ("house", version, "production")
        assert beat.health == "fresh" and beat.pid == r.proc.pid and beat.engine == "sklearn"

    # Different traffic on each replica, one bad request each.
    features = house_data.drop(columns="price")
    sent: dict[int, tuple[int, int, int]] = {}
    for i, r in enumerate(replicas):
        n_requests, rows = i + 2, 0
        for k in range(n_requests):
            batch = features.iloc[k: k + 3 + i].to_dict("records")
            resp = requests.post(r.url + "/predict", json=batch, timeout=10)
            assert resp.status_code == 200
            rows += len(batch)
        assert requests.post(r.url + "/predict", json=[{"nope": 1}], timeout=10
                             ).status_code == 422
        # answered before the model's handler: in neither the log nor the count
        assert requests.get(r.url + "/predict", timeout=10).status_code == 405
        sent[r.proc.pid] = (n_requests + 1, rows, 1)

    def counted():
        beats = by_port(store)
        got = {beats[r.port].pid: (beats[r.port].requests, beats[r.port].rows,
                                   beats[r.port].errors) for r in replicas}
        return got if got == sent else None

    wait_for(counted, "heartbeats to count every request")
    logged = wait_for(lambda: (c := log_counts(store, version)) == sent and c,
                      "the prediction log to hold every request")
    # the fleet view agrees with the prediction log, replica by replica
    view, notes = fleet.fleet(store)
    assert notes == []
    assert {f.replica.pid: (f.replica.requests, f.replica.rows, f.replica.errors)
            for f in view} == logged
    assert {f.where for f in view} == {"this machine"}
    assert fleet.rollouts(view) == [f"house: 3 on {version} (alias production)"]

    # the CLI shows the same replicas
    out = subprocess.run([sys.executable, "-m", "core", "endpoints", "list", "--all", "--json",
                          "--store", board_env[0]], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)["replicas"]
    assert sorted((r["port"], r["requests"], r["health"]) for r in listed) == sorted(
        (r.port, sent[r.proc.pid][0], "fresh") for r in replicas)

    # SIGKILL: the heartbeat stays behind and turns stale; the others stay fresh
    killed, stopped, alive = replicas
    killed.stop(signal.SIGKILL)
    wait_for(lambda: by_port(store)[killed.port].health == "stale", "the killed one to go stale",
             STALE * 10)
    beats = by_port(store)
    assert beats[alive.port].health == "fresh" and beats[stopped.port].health == "fresh"
    table = subprocess.run([sys.executable, "-m", "core", "endpoints", "list", "--all",
                            "--store", board_env[0]], cwd=ROOT, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120).stdout
    assert "stale" in table and "fresh" in table
    assert "house: 2 on" in table and "1 stale" in table

    # graceful stop: the record is gone by the time the process has exited
    # (uvicorn exits through the signal again once it has shut down cleanly)
    assert stopped.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert stopped.port not in by_port(store)
    assert alive.port in by_port(store)

    # prune removes what is gone (the killed one), never a fresh replica
    assert heartbeat.prune(store, older_than=STALE) == [beats[killed.port].id]
    assert set(by_port(store)) == {alive.port}
    assert store.fs.ls(replicas_dir(store))
