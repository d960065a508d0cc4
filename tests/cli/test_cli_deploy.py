"""``serve``, ``endpoints`` and ``docker`` on the command line, with real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import metrics_helpers
import numpy as np
import pytest

from core.cli.main import main
from core.deploy import endpoints as deploy
from core.model.bundle import bundle
from core.serving.netcheck import free_port
from core.store import paths, predlog
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data):
    board = VersionStore(tmp_path_factory.mktemp("cli-deploy") / "board")
    info = board.write(bundle(house_model, house_data.drop(columns="price"), name="house"))
    board.set_alias("house", "production", info.version)
    return board


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def records(house_data, n: int) -> list[dict]:
    return json.loads(house_data.drop(columns="price").head(n).to_json(orient="records"))


def post(url: str, rows: list[dict]) -> dict:
    request = urllib.request.Request(url, data=json.dumps(rows).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# -- serve: refused before anything loads ------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["nope", "--port", "8080"], "error: No model 'nope' in the store at .*; Models: house"),
    (["house:staging", "--port", "8080"], "error: No alias 'staging' for model 'house'"),
    (["house@20200101T000000Z-00000", "--port", "8080"], "error: .*20200101T000000Z-00000"),
    (["house", "--port", "eighty"], "error: port 'eighty' is not a number; give a port"),
    (["house", "--port", "0"], "error: port 0 is out of range"),
    (["house", "--port", "65536"], "error: port 65536 is out of range"),
    (["house", "--port", "8080", "--host", "my.server"],
     "error: host 'my.server' is not an IP address; use 127.0.0.1"),
    (["house", "--port", "8080", "--workers", "0"], "error: workers must be between 1 and 64"),
    (["house", "--port", "8080", "--workers", "lots"], "error: workers 'lots' is not a whole"),
    (["house", "--port", "8080", "--max-body-mb", "0"], "error: max body size must be more"),
    (["house", "--port", "8080", "--max-body-mb", "nan"], "error: max body size must be more"),
])
def test_serve_refuses_bad_input_in_one_line(capsys, store, args, message):
    code, out, err = run(capsys, "serve", *args, "--store", str(store.url))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    import re
    assert re.match(message.replace("; Models", ".*Models"), err), err


@pytest.mark.parametrize(("env", "args", "message"), [
    ({"FIXATIVE_API_TOKENS": " , "}, [],
     r"error: FIXATIVE_API_TOKENS is set but names no token \(it is blank, spaces or commas\)"),
    ({"FIXATIVE_API_TOKENS": ""}, [], r"error: FIXATIVE_API_TOKENS is set but names no token"),
    ({"FIXATIVE_API_TOKENS": "abc"}, [],
     r"error: FIXATIVE_API_TOKENS has a token of 3 characters; tokens need at least 16 .*"
     r"--allow-short-tokens \(FIXATIVE_ALLOW_SHORT_TOKENS=1\)\.$"),
    ({}, ["--max-rows", "0"], r"error: max_rows must be a whole number of at least 1, got '0' "
                              r"\(set it with --max-rows or FIXATIVE_MAX_ROWS\)\."),
    ({"FIXATIVE_BODY_TIMEOUT": "soon"}, [],
     r"error: body_timeout must be a positive number of seconds, got 'soon'"),
    ({}, ["--max-concurrent-bodies", "x"], r"error: max_parsing .* --max-concurrent-bodies"),
    ({}, ["--public-url", "ftp://x"], r"error: The public URL 'ftp://x' is not a plain http"),
    ({"FIXATIVE_HEARTBEAT_SECONDS": "0.01"}, [],
     r"error: FIXATIVE_HEARTBEAT_SECONDS must be a number of seconds from 1 to 604800 or 0 "
     r"to turn heartbeats off, got '0.01'\.$"),
])
def test_serve_refuses_unsafe_settings_in_one_line(capsys, monkeypatch, store, env, args,
                                                   message):
    import re

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = run(capsys, "serve", "house", "--port", "8080", *args,
                         "--store", str(store.url))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert re.match(message, err.strip()), err


def test_serve_passes_limits_and_short_token_consent_on(monkeypatch, store):
    from core.serving import process

    seen = {}
    monkeypatch.setenv("FIXATIVE_API_TOKENS", "abc")
    monkeypatch.setenv("FIXATIVE_MAX_COLUMNS", "77")
    monkeypatch.setattr(process, "run", lambda settings, **kw: seen.update(settings=settings))
    assert main(["serve", "house", "--port", str(free_port()), "--store", str(store.url),
                 "--allow-short-tokens", "--max-rows", "12", "--max-concurrent-bodies", "3",
                 "--public-url", "https://m.example.com"]) == 0
    settings = seen["settings"]
    limits = settings.limits()
    assert (limits.max_rows, limits.max_columns, limits.max_parsing) == (12, 77, 3)
    assert settings.short_tokens_allowed() and settings.public_url == "https://m.example.com"
    assert process.ServeSettings.from_json(settings.to_json()) == settings


def test_serve_refuses_a_busy_port_naming_its_owner(capsys, store):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        code, _, err = run(capsys, "serve", "house", "--port", str(port),
                           "--store", str(store.url))
    finally:
        sock.close()
    assert code == 1
    assert err.startswith(f"error: port {port} is already in use (by pid {os.getpid()}: ")
    assert err.rstrip().endswith("; choose another with --port.")


def test_serve_needs_a_port(capsys, store):
    with pytest.raises(SystemExit) as info:
        main(["serve", "house"])
    assert info.value.code == 2
    assert "the following arguments are required: --port" in capsys.readouterr().err


# -- serve with several workers, as a real process --------------------------------------------

def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.process
def test_serve_with_two_workers_serves_one_version_and_flushes_on_sigterm(store, house_data):
    port = free_port()
    version = store.resolve("house:production")[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "house:production",
                             "--port", str(port), "--workers", "2", "--store", str(store.url)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                    health = json.loads(response.read())
                if len(_children(proc.pid)) >= 2:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        assert health["version"] == version
        rows = records(house_data, 3)
        expected = store.read("house", version).predict(house_data.drop(columns="price").head(3))
        for _ in range(12):  # new connections, spread over both workers
            np.testing.assert_allclose(post(url + "/predict", rows)["predict"], expected)
            with urllib.request.urlopen(url + "/metadata", timeout=5) as response:
                assert version in response.read().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.communicate()[0]
    assert f"Serving house@{version} (alias production) on {url} with 2 workers (docs: " \
        f"{url}/)" in output
    # Each worker wrote its own segments; every answered row is on disk after SIGTERM.
    files = paths.segment_files(store, paths.log_dir(store, "house"), [version])
    assert len({Path(f).name.split("-")[1] for f in files}) >= 1
    con = duckdb.connect()
    relation = predlog.log_relation(store, con, "house", [version])
    assert relation.aggregate("count(*)").fetchall() == [(36,)]



@pytest.mark.process
def test_metrics_of_a_two_worker_endpoint_count_every_worker(store, house_data, tmp_path,
                                                             monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # where the server makes its metrics directory
    endpoint = deploy.start_endpoint(store, "house:production", port=free_port(), workers=2,
                                     log=False)
    try:
        metrics_helpers.wait_for_workers(endpoint.url, 2)
        (metrics_dir,) = tmp.glob("fixative-metrics-*")
        assert metrics_dir.stat().st_mode & 0o777 == 0o700
        good = json.dumps(records(house_data, 2)).encode()
        bad = json.dumps([{"nope": 1}]).encode()
        requests = [good] * 36 + [bad] * 4
        rounds, statuses = metrics_helpers.send_until_every_worker_answered(
            endpoint.url, metrics_dir, requests)
        assert sorted(set(statuses)) == [200, 422]
        n = 40 * rounds
        # A request is counted just after its response is sent: let the last ones land.
        by_worker = metrics_helpers.settled_predict_counts(metrics_dir, n)
        assert sum(by_worker.values()) == n and min(by_worker.values()) < n
        for _ in range(8):  # fresh connections: both workers answer scrapes
            text = metrics_helpers.scrape(endpoint.url)
            assert deploy.parse_metrics(text) == (n, 4 * rounds, 72 * rounds)
            assert metrics_helpers.value(
                text, "fixative_request_duration_seconds_count", route="/predict") == n
            assert metrics_helpers.value(text, "fixative_errors_total",
                                         route="predict") == 4 * rounds
            assert metrics_helpers.value(text, "fixative_batch_rows_sum") == 72 * rounds
            assert metrics_helpers.value(text, "fixative_worker_processes") == 2
            assert metrics_helpers.value(text, "fixative_model_info",
                                         version=endpoint.version) == 1
        (status,) = [s for s in deploy.list_endpoints(store) if s.endpoint.id == endpoint.id]
        assert (status.status, status.requests, status.errors, status.rows) == (
            "running", n, 4 * rounds, 72 * rounds)
    finally:
        deploy.stop_endpoint(store, endpoint)
    # The server removes its metrics directory when it stops.
    assert not list(tmp.glob("fixative-metrics-*"))


# -- endpoints ---------------------------------------------------------------------------------

@pytest.mark.process
def test_endpoints_start_list_logs_stop(capsys, store):
    port = free_port()
    code, out, _ = run(capsys, "endpoints", "start", "house:production", "--port", str(port),
                       "--store", str(store.url))
    assert code == 0
    assert out.startswith(f"Started house@{store.resolve('house')[1]} (via :production) on "
                          f"port {port}: http://127.0.0.1:{port}/ (id ")
    [endpoint] = [s.endpoint for s in deploy.list_endpoints(store, probe=False)]
    try:
        code, out, _ = run(capsys, "endpoints", "list", "--store", str(store.url))
        assert code == 0
        header, line = out.strip().splitlines()
        assert header.split() == ["ID", "MODEL", "ALIAS", "URL", "PID", "STATUS", "REQUESTS",
                                  "STARTED", "CHALLENGER"]
        assert line.split()[:7] == [endpoint.id, endpoint.ref, "production",
                                    f"http://127.0.0.1:{port}", str(endpoint.pid), "running",
                                    "0"]
        code, out, _ = run(capsys, "endpoints", "list", "--json", "--store", str(store.url))
        [entry] = json.loads(out)
        assert entry["status"] == "running" and entry["port"] == port
        code, out, _ = run(capsys, "endpoints", "logs", str(port), "-n", "3",
                           "--store", str(store.url))
        assert "Uvicorn running on" in out
        code, out, err = run(capsys, "endpoints", "start", "house", "--port", str(port),
                             "--store", str(store.url))
        assert code == 1 and f"port {port} is already in use (by endpoint house@" in err
    finally:
        code, out, _ = run(capsys, "endpoints", "stop", str(port), "--store", str(store.url))
    assert code == 0 and out.strip().endswith(f"(id {endpoint.id}): stopped")
    code, out, _ = run(capsys, "endpoints", "list", "--store", str(store.url))
    assert out.startswith("No endpoints. Start one with")


def test_endpoints_stop_needs_a_target(capsys, store):
    code, _, err = run(capsys, "endpoints", "stop", "--store", str(store.url))
    assert code == 1 and "Name the endpoints to stop (id or port), or pass --all" in err
    code, _, err = run(capsys, "endpoints", "stop", "abc", "--all", "--store", str(store.url))
    assert code == 1 and "or pass --all" in err
    code, _, err = run(capsys, "endpoints", "stop", "deadbeef", "--store", str(store.url))
    assert code == 1 and err.startswith("error: No endpoint 'deadbeef' on this store.")
    code, out, _ = run(capsys, "endpoints", "stop", "--all", "--store", str(store.url))
    assert code == 0 and out == "No endpoints to stop.\n"


def test_endpoints_logs_rejects_bad_line_counts(capsys, store):
    code, _, err = run(capsys, "endpoints", "logs", "1", "-n", "0", "--store", str(store.url))
    assert code == 1 and "--lines must be between 1 and 100000" in err


# -- docker ------------------------------------------------------------------------------------

def test_docker_writes_a_bundle_and_refuses_to_overwrite(capsys, store, tmp_path):
    out_dir = tmp_path / "bundle"
    code, out, _ = run(capsys, "docker", "house:production", str(out_dir), "--workers", "3",
                       "--port", "9000", "--store", str(store.url), "--no-lock")
    assert code == 0 and out.startswith(f"Wrote a Docker bundle to {out_dir}.")
    settings = json.loads((out_dir / "serve.json").read_text())
    assert (settings["version"], settings["workers"], settings["port"]) == (
        store.resolve("house:production")[1], 3, 9000)
    assert "EXPOSE 9000" in (out_dir / "Dockerfile").read_text()

    code, _, err = run(capsys, "docker", "house", str(out_dir), "--store", str(store.url))
    assert code == 1 and "already exists and is not empty; choose a new folder, or pass " \
                         "--force" in err
    code, _, _ = run(capsys, "docker", "house", str(out_dir), "--force", "--store",
                     str(store.url), "--no-lock")
    assert code == 0
    assert json.loads((out_dir / "serve.json").read_text())["workers"] == 1


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "No model 'nope'"),
    (["house", "--workers", "0"], "workers must be between 1 and 64"),
    (["house", "--workers", "-3"], "workers must be between 1 and 64"),
    (["house", "--workers", "1e9"], "workers '1e9' is not a whole number"),
    (["house", "--port", "http"], "port 'http' is not a number"),
])
def test_docker_refuses_bad_input(capsys, store, tmp_path, args, message):
    ref, *rest = args
    code, _, err = run(capsys, "docker", ref, str(tmp_path / "out"), *rest,
                       "--store", str(store.url))
    assert code == 1 and message in err
    assert not (tmp_path / "out").exists()


def test_the_endpoint_manager_speaks_the_serve_command_line():
    from core.cli.main import build_parser

    command = deploy.serve_command("house@20240503T101500Z-0a1b2", store_url="/b",
                                   host="0.0.0.0", port=9001, workers=3, log=False,
                                   batching=False, max_body_mb=2.5, trusted=["mylib.Model"])
    assert command[:3] == [sys.executable, "-m", "core"]
    args = build_parser().parse_args(command[3:])
    assert (args.ref, args.store, args.host, args.port, args.workers) == (
        "house@20240503T101500Z-0a1b2", "/b", "0.0.0.0", "9001", "3")
    assert args.no_log and args.no_batching and args.trust == ["mylib.Model"]
    assert float(args.max_body_mb) == 2.5


def test_trust_is_repeatable_and_accumulates():
    from core.cli.main import build_parser

    args = build_parser().parse_args(["serve", "house:production", "--port", "9000",
                                      "--trust", "a.B", "--trust", "c.D,e.f.G"])
    assert args.trust == ["a.B", "c.D", "e.f.G"]
    args = build_parser().parse_args(["docker", "house", "out", "--trust", "a.B",
                                      "--trust", "c.D"])
    assert args.trust == ["a.B", "c.D"]
    # one name per --trust: it never swallows the reference after it
    for command in (["serve", "--trust", "a.B", "house", "--port", "9000"],
                    ["endpoints", "start", "--trust", "a.B", "house"],
                    ["write", "--trust", "a.B", "model.pkl", "--name", "house"]):
        args = build_parser().parse_args(command)
        assert args.trust == ["a.B"]
        assert getattr(args, "ref", None) or args.model_file


@pytest.mark.parametrize("name", ["", "eval", "not a name", "os.system;rm", "a..b", "1a.b"])
def test_trust_takes_module_dot_name(capsys, name):
    from core.cli.main import build_parser

    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["write", "m.pkl", "--name", "x", "--trust", name])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "expected MODULE.NAME as the safety check lists it" in err
    assert len(err.strip().splitlines()) == 2  # the message, then where to find help


def test_docker_k8s_writes_manifests(capsys, store, tmp_path):
    out_dir = tmp_path / "k8s-bundle"
    code, out, _ = run(capsys, "docker", "house:production", str(out_dir), "--k8s",
                       "--no-lock", "--store", str(store.url))
    assert code == 0 and f"kubectl apply -k {out_dir / 'k8s'}" in out
    assert (out_dir / "k8s" / "kustomization.yaml").is_file()
    assert not (out_dir / "requirements.lock").exists()
    # --k8s implies s3fs, so pods can log to an s3:// board
    assert any(line.startswith("s3fs==")
               for line in (out_dir / "requirements.txt").read_text().splitlines())
    assert json.loads((out_dir / "serve.json").read_text())["alias"] == "production"


def test_endpoints_list_all_on_a_board_without_replicas(capsys, store):
    code, out, _ = run(capsys, "endpoints", "list", "--all", "--store", str(store.url))
    assert code == 0 and "No replica reports to this board" in out
    code, out, _ = run(capsys, "endpoints", "list", "--all", "--json", "--store", str(store.url))
    assert code == 0 and json.loads(out)["replicas"] == []


@pytest.mark.parametrize("value", ["", "soon", "-1d", "5m", "1e400", "9" * 60])
def test_endpoints_prune_refuses_bad_spans(capsys, store, value):
    code, _, err = run(capsys, "endpoints", "prune", f"--older-than={value}", "--store",
                       str(store.url))
    assert code == 1 and err.startswith("error: ") and (
        "--older-than must be a span" in err or "ambiguous" in err)


def test_endpoints_prune_with_nothing_to_prune(capsys, store):
    code, out, _ = run(capsys, "endpoints", "prune", "--store", str(store.url))
    assert code == 0 and out.startswith("Removed 0 heartbeats")
