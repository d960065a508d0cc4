"""The server as a real uvicorn process: vetiver's client, concurrency, signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import requests

from core.model.bundle import bundle
from core.store.predlog import log_relation
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.process
ROOT = Path(__file__).resolve().parents[2]

SERVE = """
import sys, uvicorn
from core.serving.app import create_app
from core.store.versionstore import VersionStore
board, name, port, flush = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
body_timeout = float(sys.argv[5])
store = VersionStore(board)
app = create_app(store.read(name), store=store, tokens=[], flush_interval=flush,
                 body_timeout=body_timeout)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            timeout_graceful_shutdown=10)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, board: str, name: str, flush: float = 1.0,
                 body_timeout: float = 30.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.output = Path(board).parent / f"server-{self.port}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVE, board, name, str(self.port), str(flush),
                 str(body_timeout)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.output.read_text())
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("server did not become ready")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data):
    path = str(tmp_path_factory.mktemp("proc") / "board")
    VersionStore(path).write(bundle(house_model, house_data.drop(columns=["price"]),
                                    name="house"))
    return path


@pytest.fixture(scope="module")
def server(board):
    s = Server(board, "house", flush=0.2)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def features(house_data):
    return house_data.drop(columns=["price"]).reset_index(drop=True)


def test_vetivers_own_client_works(server, house_model, features):
    import vetiver

    df = features.head(25)
    endpoint = vetiver.vetiver_endpoint(server.url + "/predict")
    got = vetiver.predict(endpoint, df)
    assert list(got.columns) == ["predict"]
    np.testing.assert_allclose(got["predict"].to_numpy(), house_model.predict(df))


def test_vetivers_client_with_a_model_fitted_on_an_array(tmp_path):
    import vetiver
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(6)
    X = rng.normal(size=(40, 3))
    model = LinearRegression().fit(X, X @ [1.0, -2.0, 0.5])
    board = str(tmp_path / "board")
    VersionStore(board).write(bundle(model, name="arr"))
    s = Server(board, "arr")
    try:
        endpoint = vetiver.vetiver_endpoint(s.url + "/predict")
        got = vetiver.predict(endpoint, pd.DataFrame(X[:5]))  # columns 0, 1, 2
        np.testing.assert_allclose(got["predict"].to_numpy(), model.predict(X[:5]))
    finally:
        s.stop()


def test_concurrent_clients_each_get_their_own_rows(server, house_model, features):
    parts = [features.iloc[i * 3:i * 3 + 1 + i % 4] for i in range(64)]

    def send(part):
        r = requests.post(server.url + "/predict", data=part.to_json(orient="records"),
                          timeout=30)
        r.raise_for_status()
        return r.json()["predict"]

    before = _metric(server, "fixative_batch_requests_sum")
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(send, parts))
    for part, got in zip(parts, results):
        np.testing.assert_allclose(got, house_model.predict(part))
    # every request went through exactly one model call, merged or not
    assert _metric(server, "fixative_batch_requests_sum") - before == len(parts)


def _metric(server, name: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_mlflow_request_over_the_network(server, house_model, features):
    part = features.head(10)
    body = {"dataframe_split": json.loads(part.to_json(orient="split", index=False))}
    r = requests.post(server.url + "/invocations", json=body, timeout=30)
    np.testing.assert_allclose(r.json()["predictions"], house_model.predict(part))


def test_body_over_the_limit_while_streaming(server):
    def body():
        yield b"["
        for _ in range(30_000):
            yield b'{"bedrooms": 1, "padding": "' + b"x" * 1000 + b'"},'
        yield b"{}]"

    try:
        r = requests.post(server.url + "/predict", data=body(), timeout=30)
    except requests.ConnectionError:
        pytest.fail("the server should answer 413, not drop the connection")
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"
    assert requests.get(server.url + "/ping", timeout=5).status_code == 200


def test_a_client_that_hangs_up_mid_upload_is_no_server_error(server, board):
    before = _status_count(server, "499"), _status_count(server, "500")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-Request-ID: hung-up-1\r\nContent-Length: 1000\r\n\r\n[{\"bedroo")
    deadline = time.monotonic() + 10
    while _status_count(server, "499") == before[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _status_count(server, "499") == before[0] + 1
    assert _status_count(server, "500") == before[1]
    assert "Traceback" not in server.output.read_text()
    con = duckdb.connect()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the log is flushed every 0.2 s here
        rows = log_relation(VersionStore(board), con, "house").filter(
            "request_id = 'hung-up-1'").project("status, error_code").fetchall()
        if rows:
            break
        time.sleep(0.2)
    assert rows == [(499, "client_closed")]


def test_a_body_that_stops_arriving_gets_a_408(board):
    s = Server(board, "house", body_timeout=0.5)
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 1000\r\n\r\n[{\"bedroo")
            answer = b""
            while b"}}" not in answer:  # the JSON error ends the response
                part = sock.recv(4096)
                if not part:
                    break
                answer += part
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408")
        error = json.loads(body)["error"]
        assert error["code"] == "request_timeout"
        assert error["message"].startswith("The request body did not arrive in time: 9 bytes "
                                           "in 0.5 s, the longest this server waits for a "
                                           "whole body.")
        assert requests.get(s.url + "/ping", timeout=5).status_code == 200
    finally:
        s.stop()


def _status_count(server, status: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("fixative_requests_total{") and f'status="{status}"' in line \
                and 'route="/predict"' in line:
            total += float(line.split()[-1])
    return total


def test_sigterm_flushes_everything_answered(board, features):
    # a flush interval far longer than the test: only the shutdown flush can write
    s = Server(board, "house", flush=3600)
    ids = []
    try:
        for i in range(12):
            r = requests.post(s.url + "/predict", data=features.iloc[i:i + 2].to_json(
                orient="records"), headers={"X-Request-ID": f"sigterm-{i}"}, timeout=30)
            assert r.status_code == 200
            ids.append(r.headers["x-request-id"])
        r = requests.post(s.url + "/predict", data=b"[{", headers={"X-Request-ID": "sigterm-bad"},
                          timeout=30)
        assert r.status_code == 400
    finally:
        code = s.stop(signal.SIGTERM)
    # uvicorn re-raises the signal after its graceful shutdown
    assert code in (0, -signal.SIGTERM), s.output.read_text()
    assert "Traceback" not in s.output.read_text()
    store = VersionStore(board)
    log = log_relation(store, duckdb.connect(), "house").fetchdf()
    mine = log[log["request_id"].str.startswith("sigterm-")]
    assert sorted(set(mine["request_id"])) == sorted(ids + ["sigterm-bad"])
    assert len(mine) == 12 * 2 + 1


def test_sigkill_loses_at_most_the_last_interval(board, features):
    s = Server(board, "house", flush=0.1)
    try:
        r = requests.post(s.url + "/predict", data=features.head(3).to_json(orient="records"),
                          headers={"X-Request-ID": "killed-1"}, timeout=30)
        assert r.status_code == 200
        store = VersionStore(board)
        deadline = time.monotonic() + 30
        found = False
        while not found and time.monotonic() < deadline:
            log = log_relation(store, duckdb.connect(), "house").fetchdf()
            found = "killed-1" in set(log["request_id"])
            time.sleep(0.05)
    finally:
        s.stop(signal.SIGKILL)
    assert found  # written by the background flush, before any shutdown
    leftovers = [p for p in store.fs.find(store.path(".fixative", "logs"))
                 if not p.endswith(".parquet")]
    assert all(os.path.basename(p).startswith(".") for p in leftovers)
