"""Champion and challenger on a fleet: real replicas on one S3 board (moto on loopback),
some started from Docker bundles' entry point, some with ``serve --shadow/--canary``.
Each heartbeat names its challenger; canary keys go the same way on every replica; the
shadow replicas' logs pair up in the comparison, row for row, across replicas."""

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

from core.cli.main import main
from core.deploy import docker as dockerbundle
from core.deploy import fleet as fleet_mod
from core.model import examples
from core.model.bundle import bundle
from core.monitoring.actuals import save_actuals
from core.serving import heartbeat
from core.serving.challenger import canary_pick
from core.serving.netcheck import free_port
from core.store.paths import log_dir, segment_files
from core.store.versionstore import VersionStore

pytestmark = [pytest.mark.process, pytest.mark.s3]
s3_server = store_fixtures.s3_server
ROOT = Path(__file__).resolve().parents[2]
SHARE = 0.3
SHADOW_REQUESTS = 6  # per shadow replica, two rows each



class Replica:
    """One serving process: a bundle's entry point (``bundle``) or ``python -m core serve``."""

    def __init__(self, kind: str, args: list[str], env: dict[str, str], cwd: Path,
                 folder: Path, mode: str) -> None:
        self.kind, self.mode = kind, mode
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = folder / f"{kind}-{self.port}.log"
        env = dict(env, FIXATIVE_INDEX_DIR=str(folder / f"idx-{self.port}"))
        if kind == "bundle":
            env.update(PORT=str(self.port), FIXATIVE_HOST="127.0.0.1")
            cmd = [sys.executable, "-m", "core.serving.process", "serve.json"]
        else:
            cmd = [sys.executable, "-m", "core", "serve", *args, "--port", str(self.port)]
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def ready(self) -> bool:
        return answers(self.proc, self.url, self.output)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return stop(self.proc, sig)


@pytest.fixture(scope="module")
def board(s3_server, tmp_path_factory, house_model, house_data):
    import s3fs

    bucket = f"pair-{uuid.uuid4().hex[:10]}"
    s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing").mkdir(bucket)
    env = dict(S3_KEYS, FIXATIVE_S3_ENDPOINT_URL=s3_server,
               FIXATIVE_INDEX_DIR=str(tmp_path_factory.mktemp("pair-index")),
               FIXATIVE_HEARTBEAT_SECONDS="1")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("FIXATIVE_API_TOKENS", raising=False)
        store = VersionStore(f"s3://{bucket}/team")
        x = house_data.drop(columns="price")
        v1 = store.write(bundle(house_model, x, name="house")).version
        store.set_alias("house", "production", v1)
        v2 = store.write(bundle(examples.house_model(house_data, n_estimators=4), x,
                                name="house")).version
        yield store, env, v1, v2


@pytest.fixture(scope="module")
def replicas(board, tmp_path_factory):
    store, board_env, _, v2 = board
    folder = tmp_path_factory.mktemp("pair-fleet")
    shadow = dockerbundle.write_bundle(store, "house:production", folder / "shadow",
                                       shadow=f"house@{v2}", with_s3=True)
    canary = dockerbundle.write_bundle(store, "house:production", folder / "canary",
                                       canary=f"house@{v2}:{SHARE * 100:g}%", with_s3=True)
    cli_env = dict(os.environ, PYTHONPATH=str(ROOT), **board_env)
    # a bundle runs with nothing of this checkout on the path, its board from FIXATIVE_STORE
    bundle_env = {k: v for k, v in cli_env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    bundle_env["FIXATIVE_STORE"] = str(store.url)
    board_args = ["house:production", "--store", str(store.url)]
    started = [
        Replica("bundle", [], bundle_env, shadow, folder, "shadow"),
        Replica("bundle", [], bundle_env, shadow, folder, "shadow"),
        Replica("serve", [*board_args, "--shadow", f"house@{v2}"], cli_env, ROOT, folder,
                "shadow"),
        Replica("bundle", [], bundle_env, canary, folder, "canary"),
        Replica("serve", [*board_args, "--canary", f"house@{v2}:{SHARE * 100:g}%"], cli_env,
                ROOT, folder, "canary"),
    ]
    try:
        for r in started:
            wait_for(r.ready, f"{r.kind} replica on port {r.port}", 90)
        yield started
    finally:
        for r in started:
            r.stop(signal.SIGKILL)


def test_every_replica_reports_its_challenger(replicas, board, capsys):
    store, _, v1, v2 = board
    ports = {r.port: r for r in replicas}
    seen = wait_for(lambda: (b := {x.port: x for x in heartbeat.read_replicas(store)[0]})
                    and set(ports) <= set(b) and b, "5 heartbeats", 90)
    labels = {"shadow": f"house@{v2} (shadow)", "canary": f"house@{v2} (canary 30%)"}
    for port, r in ports.items():
        assert (seen[port].version, seen[port].challenger) == (v1, labels[r.mode])
        meta = requests.get(r.url + "/metadata", timeout=5).json()["challenger"]
        assert (meta["version"], meta["mode"]) == (v2, r.mode)
    found, _ = fleet_mod.fleet(store)
    (line,) = fleet_mod.rollouts(found)
    assert f"challenger {labels['shadow']} on 3" in line
    assert f"challenger {labels['canary']} on 2" in line
    assert main(["endpoints", "list", "--all", "--json", "--store", str(store.url)]) == 0
    listed = json.loads(capsys.readouterr().out)["replicas"]
    assert {r["port"]: r["challenger"] for r in listed if r["port"] in ports} == {
        p: labels[r.mode] for p, r in ports.items()}


def test_a_canary_key_goes_the_same_way_on_every_replica(replicas, house_data):
    canaries = [r for r in replicas if r.mode == "canary"]
    body = house_data.drop(columns="price").head(1).to_json(orient="records")
    sides: dict[str, set[str]] = {}
    for i in range(24):
        key = f"customer-{i}"
        for r in canaries:
            answer = requests.post(r.url + "/predict", data=body, timeout=30,
                                   headers={"X-Fixative-Key": key,
                                            "Content-Type": "application/json"})
            assert answer.status_code == 200
            sides.setdefault(key, set()).add(answer.headers["x-fixative-role"])
    # one side per key on both replicas: the side is a function of the key and the share
    assert all(len(s) == 1 for s in sides.values())
    assert {k: s.pop() for k, s in sides.items()} == {
        k: "challenger" if canary_pick(k, SHARE) else "champion" for k in sides}


def _log(store, version: str):
    frames = []
    for path in segment_files(store, log_dir(store, "house"), [version]):
        with store.fs.open(path, "rb") as f:
            frames.append(pq.read_table(f, columns=["request_id", "row", "status",
                                                    "serving_role"]).to_pandas())
    import pandas as pd

    return pd.concat(frames, ignore_index=True)


def test_shadow_replicas_log_pairs_the_comparison_matches(replicas, board, house_data,
                                                         capsys):
    import pandas as pd

    store, _, v1, v2 = board
    x = house_data.drop(columns="price")
    shadows = [r for r in replicas if r.mode == "shadow"]
    ids: dict[str, list[int]] = {}  # request id -> the house_data rows sent
    sent = {r.port: 0 for r in shadows}
    for n, r in enumerate(shadows):
        for i in range(SHADOW_REQUESTS):
            at = [2 * (n * SHADOW_REQUESTS + i), 2 * (n * SHADOW_REQUESTS + i) + 1]
            answer = requests.post(r.url + "/predict", data=x.iloc[at].to_json(orient="records"),
                                   headers={"Content-Type": "application/json"}, timeout=30)
            assert answer.status_code == 200
            rid = answer.headers["x-request-id"]
            assert rid not in ids  # the server's ids never repeat, on any replica
            ids[rid] = at
            sent[r.port] += 1
    # a client that sends one X-Request-ID to two replicas: those rows cannot be paired
    for r in shadows[:2]:
        answer = requests.post(r.url + "/predict", data=x.head(2).to_json(orient="records"),
                               headers={"Content-Type": "application/json",
                                        "X-Request-ID": "client-retry-1"}, timeout=30)
        assert answer.headers["x-request-id"] == "client-retry-1"
        sent[r.port] += 1
    for r in shadows:
        wait_for(lambda r=r: (c := requests.get(r.url + "/metadata", timeout=5).json()[
            "challenger"]) and c["scored"] == sent[r.port] and c["queued"] == 0,
            f"the challenger of port {r.port} to score {sent[r.port]} requests", 90)
    for r in replicas:
        assert r.stop() in (0, -signal.SIGTERM), r.output.read_text()

    champion, challenger = _log(store, v1), _log(store, v2)
    assert set(champion["serving_role"]) == {"champion"}
    assert set(challenger["serving_role"]) == {"challenger"}
    shadow_ids = set(ids)
    for log in (champion, challenger):
        mine = log[log["request_id"].isin(shadow_ids)]
        assert len(mine) == 2 * len(shadow_ids)  # every row sent, once
        assert set(mine["request_id"]) == shadow_ids
        assert sorted(mine["row"].unique()) == [0, 1]
        assert (log["request_id"] == "client-retry-1").sum() == 4  # 2 rows on 2 replicas

    truth = pd.DataFrame([{"id": rid, "row": k, "y": float(house_data["price"].iloc[at[k]])}
                          for rid, at in ids.items() for k in (0, 1)])
    save_actuals(store, "house", truth, key_column="id", actual_column="y", row_column="row")
    assert main(["monitor", "house:production", "--what", "comparison", "--format", "json",
                 "--store", str(store.url)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["challenger"] == f"house@{v2}"
    assert report["overall"]["n"] == 2 * len(shadow_ids)
    assert sum(w["n_pairs"] for w in report["windows"]) == 2 * len(shadow_ids)
    assert "1 request id was logged more than once" in report["reason"]
