"""Shadow mode in real uvicorn processes started by the CLI (``serve REF --shadow REF2``):
a challenger that raises or sleeps never changes what the caller gets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest
import requests
from challenger_helpers import write_challengers
from server_helpers import stop, wait_ready

from core.store.predlog import log_relation
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.process
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CliServer:
    def __init__(self, board: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
                   FIXATIVE_HEARTBEAT_SECONDS="0")
        env.pop("FIXATIVE_API_TOKENS", None)
        self.output = Path(board).parent / f"server-{self.port}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "core", "serve", *args, "--store", board,
                 "--port", str(self.port)], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT)
        wait_ready(self.proc, self.url, self.output)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop(self.proc, sig)


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data):
    path = str(tmp_path_factory.mktemp("shadow") / "board")
    store = VersionStore(path)
    write_challengers(store, house_model, house_data.drop(columns=["price"]), 20.0)
    return path


@pytest.fixture(scope="module")
def features(house_data):
    return house_data.drop(columns=["price"]).reset_index(drop=True)


def _requests(features):
    """Good and bad requests: (route, body, content type)."""
    good = [(route, features.iloc[i:i + 1 + i % 3].to_json(orient="records"), "application/json")
            for i, route in enumerate(["/predict"] * 12)]
    bad = [("/predict", "[{\"bedrooms\": \"many\"}]", "application/json"),
           ("/predict", "not json", "application/json"),
           ("/predict", "[]", "application/json"),
           ("/predict_proba", features.head(1).to_json(orient="records"), "application/json"),
           ("/nowhere", "{}", "application/json")]
    return good + bad


def _answers(url: str, reqs):
    out = []
    for i, (route, body, ctype) in enumerate(reqs):
        r = requests.post(url + route, data=body, headers={"Content-Type": ctype,
                                                           "X-Request-ID": f"r{i}"}, timeout=30)
        out.append((r.status_code, r.content, r.headers.get("x-fixative-warnings"),
                    r.headers.get("x-fixative-role")))
    return out


@pytest.fixture(scope="module")
def plain(board, features):
    s = CliServer(board, "house", "--no-log")
    try:
        yield _answers(s.url, _requests(features))
    finally:
        s.stop()


def test_a_raising_challenger_changes_nothing_the_caller_sees(board, features, plain,
                                                              house_model):
    s = CliServer(board, "house", "--shadow", "faulty", "--trust", "challenger_helpers.Faulty")
    try:
        got = _answers(s.url, _requests(features))
        assert got == plain
        assert got[0][0] == 200
        np.testing.assert_allclose(requests.post(
            s.url + "/predict", data=features.head(3).to_json(orient="records"),
            timeout=30).json()["predict"], house_model.predict(features.head(3)))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            meta = requests.get(s.url + "/metadata", timeout=5).json()["challenger"]
            if meta["failed"] >= 13:
                break
            time.sleep(0.1)
        assert meta["mode"] == "shadow" and meta["name"] == "faulty"
        # the 12 good requests and the one above: each scored by the challenger, each failed
        assert meta["failed"] == 13 and meta["scored"] == 0
        assert requests.get(s.url + "/healthz", timeout=5).status_code == 200
    finally:
        s.stop()
    # the challenger's failures are in its own log, marked as the challenger's
    con = duckdb.connect()
    rel = log_relation(VersionStore(board), con, "faulty")
    rows = rel.project("request_id, status, serving_role").fetchall()
    assert {r[1] for r in rows} == {422}, rows  # the model failed on the rows
    assert {r[2] for r in rows} == {"challenger"}
    assert {r[0] for r in rows} >= {f"r{i}" for i in range(12)}


def test_a_slow_challenger_never_holds_up_an_answer(board, features, plain):
    s = CliServer(board, "house", "--shadow", "sleepy", "--trust", "challenger_helpers.Sleepy")
    try:
        got = _answers(s.url, _requests(features))
        assert got == plain
        meta = requests.get(s.url + "/metadata", timeout=5).json()["challenger"]
        # every answer came back while the challenger was still on its first 20 s call
        assert meta["scored"] == 0 and meta["failed"] == 0
    finally:
        s.stop(signal.SIGKILL)


def test_canary_across_two_workers(board, features, house_model):
    s = CliServer(board, "house", "--canary", "twin:50%", "--workers", "2")
    try:
        body = features.head(2).to_json(orient="records")
        expected = house_model.predict(features.head(2))
        roles: dict[str, str] = {}
        for i in range(60):  # a key goes the same way whichever worker answers
            key = f"customer-{i % 12}"
            r = requests.post(s.url + "/predict", data=body, timeout=60,
                              headers={"X-Fixative-Key": key})
            assert r.status_code == 200
            np.testing.assert_allclose(r.json()["predict"], expected)
            assert roles.setdefault(key, r.headers["x-fixative-role"]) == roles[key]
        assert set(roles.values()) == {"champion", "challenger"}
        meta = requests.get(s.url + "/metadata", timeout=5).json()["challenger"]
        assert (meta["mode"], meta["share"], meta["name"]) == ("canary", 0.5, "twin")
    finally:
        s.stop()
    con = duckdb.connect()
    twin = log_relation(VersionStore(board), con, "twin").project("serving_role").fetchall()
    assert twin and {r[0] for r in twin} == {"challenger"}


@pytest.mark.parametrize(("args", "message"), [
    (["--canary", "house:150%"], "outside 0%-100%"),
    (["--canary", "house:0%"], "outside 0%-100%"),
    (["--canary", "house:-1"], "outside 0%-100%"),
    (["--canary", "house"], "REF:SHARE"),
    (["--canary", "house:abc"], "is not a number"),
    (["--shadow", "house"], "is the champion itself"),
    (["--shadow", "faulty"], "outside the safety allowlist"),
    (["--shadow", "nosuch"], "nosuch"),
    (["--shadow", "../../etc"], "error: "),
])
def test_bad_challengers_are_refused_before_serving(board, args, message, capsys):
    from core.cli.main import main

    port = free_port()
    assert main(["serve", "house", "--store", board, "--port", str(port), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: "), err
    with socket.socket() as sock:  # nothing was left listening
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_shadow_and_canary_together_are_refused(board, capsys):
    from core.cli.main import main

    with pytest.raises(SystemExit):
        main(["serve", "house", "--store", board, "--port", "1", "--shadow", "faulty",
              "--canary", "faulty:5%"])
    assert "not allowed with argument" in capsys.readouterr().err
