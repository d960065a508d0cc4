"""The server as a real uvicorn process: vetiver's client, concurrency, signals."""

from __future__ import annotations

import json
import os
import re
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
from server_helpers import stop, wait_ready

from core.model.bundle import bundle
from core.store.predlog import log_relation
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.process
ROOT = Path(__file__).resolve().parents[2]

SERVE = """
import json, sys, uvicorn
from core.serving.app import create_app
from core.serving.limits import Limits
from core.serving.process import GuardedHttpTools, uvicorn_limits
from core.store.versionstore import VersionStore
board, name, port, flush = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
limits = Limits(**json.loads(sys.argv[5]))
GuardedHttpTools.header_timeout = limits.header_timeout
store = VersionStore(board)
app = create_app(store.read(name), store=store, tokens=[], flush_interval=flush, limits=limits)
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
            timeout_graceful_shutdown=10, **uvicorn_limits(limits))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, board: str, name: str, flush: float = 1.0,
                 body_timeout: float = 30.0, **limits: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.output = Path(board).parent / f"server-{self.port}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", SERVE, board, name, str(self.port), str(flush),
                 json.dumps({"body_timeout": body_timeout, **limits})],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_ready(self.proc, self.url, self.output)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        return stop(self.proc, sig)


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


# -- limits that need real sockets ------------------------------------------------------------


def _answer(sock: socket.socket, deadline: float = 10.0, answer: bytes = b"") -> bytes:
    """One whole response (head and Content-Length bytes of body), or what came of it
    before the server closed the connection."""
    sock.settimeout(deadline)
    while True:
        head, sep, body = answer.partition(b"\r\n\r\n")
        if sep:
            length = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")]
            if length and len(body) >= length[0]:
                return answer
        try:
            part = sock.recv(65536)
        except TimeoutError:
            return answer
        if not part:
            return answer
        answer += part


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.fixture(scope="module")
def strict(board):
    """A server with tight limits: 1 s per head, 1.5 s per body, one large body at once."""
    s = Server(board, "house", body_timeout=1.5, header_timeout=1.0, max_parsing=1,
               max_connections=64)
    yield s
    s.stop()


def test_a_trickled_body_gets_a_408_at_the_whole_body_deadline(strict):
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n[")
        # a byte every 0.3 s: never idle long, but never done
        sock.settimeout(0.3)
        answer = b""
        while time.monotonic() - t0 < 8 and not answer:
            try:
                sock.sendall(b" ")
                answer = sock.recv(4096)
            except TimeoutError:
                continue
        answer = _answer(sock, answer=answer)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    error = json.loads(answer.partition(b"\r\n\r\n")[2])["error"]
    # the whole-body deadline stopped it although bytes kept coming (not an idle timeout)
    got = re.match(r"The request body did not arrive in time: ([\d,]+) bytes in 1\.5 s, the "
                   r"longest this server waits for a whole body\.", error["message"])
    assert got, error["message"]
    assert int(got[1].replace(",", "")) >= 2


def test_slow_request_heads_are_closed_at_the_header_timeout(strict):
    socks = [socket.create_connection(("127.0.0.1", strict.port), timeout=5) for _ in range(40)]
    try:
        for i, sock in enumerate(socks):
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
        assert all(_closed_by_server(sock, 4) for sock in socks)
        # and a header byte now and then does not keep one open either
        with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\n")
            for _ in range(4):
                time.sleep(0.4)
                try:
                    sock.sendall(b"X-A: b\r\n")
                except OSError:
                    break
            assert _closed_by_server(sock, 3)
    finally:
        for sock in socks:
            sock.close()
    assert requests.get(strict.url + "/ping", timeout=5).status_code == 200


def test_a_keep_alive_connection_gets_a_fresh_head_deadline(strict):
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        for _ in range(3):  # 3 requests over 1.8 s on one connection: each head is quick
            time.sleep(0.6)
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _answer(sock).startswith(b"HTTP/1.1 200")


def test_a_huge_request_head_is_a_431(strict):
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(100):
                sock.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
        except OSError:
            pass
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "headers_too_large"


def test_a_large_body_past_the_parsing_slots_is_a_429(strict, features):
    body = features.head(1).to_json(orient="records").encode()
    big = b"[" + b",".join([body[1:-1]] * 1500) + b"]"  # > 64 KiB: needs a slot
    assert len(big) > 64 * 1024
    with socket.create_connection(("127.0.0.1", strict.port), timeout=5) as sock:
        # holds the only slot: a large body that has not finished arriving
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 200000\r\n\r\n[")
        time.sleep(0.2)
        r = requests.post(strict.url + "/predict", data=big, timeout=10)
        assert r.status_code == 429, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["code"] == "too_many_requests"
        small = requests.post(strict.url + "/predict", data=body, timeout=10)
        assert small.status_code == 200  # small bodies never wait for a slot
    # the slot is given back when the held body times out or its client goes
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = requests.post(strict.url + "/predict", data=big, timeout=10)
        if r.status_code == 200:
            break
        time.sleep(0.2)
    assert r.status_code == 200
