"""Local endpoints as real server processes: start, list, count, stop, crash, stale pids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from deploy_helpers import deploy_store

from core.deploy import endpoints as deploy
from core.deploy import views
from core.errors import Conflict, FixativeError, InvalidArgument, NotFound, UnsafeModel
from core.model.bundle import bundle
from core.serving.netcheck import free_port, port_is_free
from core.store.versionstore import VersionStore

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data):
    return deploy_store(tmp_path_factory.mktemp("deploy"), house_model, house_data)


@pytest.fixture(scope="module")
def endpoint(store):
    ep = deploy.start_endpoint(store, "house:production", port=free_port())
    yield ep
    if deploy.process_state(ep.pid, ep.proc_start) == "alive":
        deploy.stop_endpoint(store, ep.id, grace=2)


def post(url: str, payload, content_type: str = "application/json") -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def records_of(rows) -> list[dict]:
    return json.loads(rows.to_json(orient="records"))


def wait_for(check, seconds: float = 15.0):
    """Poll ``check`` until it returns a non-empty list or another non-None value (the
    prediction log flushes about once a second)."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        done = bool(result) if isinstance(result, list) else result is not None
        if done or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_started_endpoint_serves_the_resolved_version(endpoint, store, house_data):
    version = store.resolve("house:production")[1]
    assert (endpoint.name, endpoint.version, endpoint.alias) == ("house", version, "production")
    assert endpoint.status == "running"
    with urllib.request.urlopen(endpoint.url + "/healthz", timeout=5) as response:
        assert json.loads(response.read())["version"] == version
    rows = house_data.drop(columns="price").head(7)
    status, body = post(endpoint.url + "/predict", records_of(rows))
    assert status == 200
    expected = store.read("house", version).predict(rows)
    np.testing.assert_allclose(body["predict"], expected)


def test_start_is_recorded_locally_and_on_the_board(endpoint, store):
    registry = deploy.run_dir(store) / f"{endpoint.id}.json"
    saved = json.loads(registry.read_text())
    assert saved["pid"] == endpoint.pid and saved["port"] == endpoint.port
    assert saved["status"] == "running" and saved["proc_start"] is not None
    started = [r for r in deploy.endpoint_history(store, "house")
               if r.payload["id"] == endpoint.id]
    assert [r.payload["event"] for r in started] == ["started"]
    assert started[0].version == endpoint.version
    assert started[0].payload["alias"] == "production"


def test_list_shows_health_and_counts_prediction_requests(endpoint, store, house_data):
    before = deploy.list_endpoints(store)
    [mine] = [s for s in before if s.endpoint.id == endpoint.id]
    rows = records_of(house_data.drop(columns="price").head(3))
    assert post(endpoint.url + "/predict", rows)[0] == 200
    assert post(endpoint.url + "/predict", [{"bedrooms": "many"}])[0] == 422
    [after] = [s for s in deploy.list_endpoints(store) if s.endpoint.id == endpoint.id]
    assert after.status == "running" and after.alive
    # Health probes and metric scrapes are not counted; the two predictions are.
    assert after.requests == mine.requests + 2
    assert after.errors == mine.errors + 1
    assert after.rows == mine.rows + 3
    assert deploy.list_endpoints(store, name="other") == []


def test_recent_requests_come_from_the_prediction_log(endpoint, store, house_data):
    rows = records_of(house_data.drop(columns="price").head(4))
    assert post(endpoint.url + "/predict", rows)[0] == 200
    assert post(endpoint.url + "/invocations", {"dataframe_records": rows[:2]})[0] == 200

    def logged():
        r = views.recent_requests(store, endpoint, 2)
        return r if len(r) == 2 and r.iloc[0]["route"] == "invocations" else None

    recent = wait_for(logged)
    assert list(recent.columns) == views.RECENT_COLUMNS
    assert recent.iloc[0]["rows"] == 2 and recent.iloc[1]["rows"] == 4
    assert recent.iloc[1]["route"] == "predict"
    assert (recent["status"] == 200).all()
    assert recent["ts"].is_monotonic_decreasing
    assert recent["prediction"].str.len().gt(0).all()  # what the model answered


def test_recent_requests_rejects_bad_counts(endpoint, store):
    for n in (0, -1, 10_001, 2.5, True, "5"):
        with pytest.raises(InvalidArgument, match="n must be a whole number between 1 and 10000"):
            views.recent_requests(store, endpoint, n)


def test_busy_port_names_the_endpoint_using_it(endpoint, store):
    with pytest.raises(Conflict, match=rf"port {endpoint.port} is already in use \(by endpoint "
                                       rf"house@{endpoint.version}, pid {endpoint.pid}\); "
                                       "choose another port"):
        deploy.start_endpoint(store, "house", port=endpoint.port)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"port": "http"}, "port 'http' is not a number"),
    ({"port": 70000}, "port 70000 is out of range"),
    ({"port": 8080, "host": "my-laptop"}, "host 'my-laptop' is not an IP address"),
    ({"port": 8080, "workers": 0}, "workers must be between 1 and 64"),
    ({"port": 8080, "max_body_mb": -1}, "max body size must be more than 0"),
    ({"port": 8080, "max_body_mb": "lots"}, "max body size 'lots' is not a number"),
    ({"port": 8080, "timeout": 0}, "timeout must be a positive number of seconds"),
    ({"port": 8080, "timeout": float("nan")}, "timeout must be a positive number of seconds"),
])
def test_bad_settings_are_refused_before_anything_starts(store, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        deploy.start_endpoint(store, "house", **kwargs)
    assert not list(deploy.run_dir(store).glob("*.json")) or all(
        json.loads(p.read_text())["name"] == "house"
        for p in deploy.run_dir(store).glob("*.json"))


def test_unknown_model_or_alias(store):
    with pytest.raises(NotFound, match="No model 'nope'"):
        deploy.start_endpoint(store, "nope", port=free_port())
    with pytest.raises(NotFound, match="No alias 'staging'"):
        deploy.start_endpoint(store, "house:staging", port=free_port())


def test_a_model_that_needs_trust_is_refused_before_any_process_starts(store):
    before = set(deploy.run_dir(store).glob("*"))
    with pytest.raises(UnsafeModel, match=r"handmade@.* would import 1 name\(s\) outside the "
                                          r"safety allowlist: deploy_helpers\.HandMade"):
        deploy.start_endpoint(store, "handmade", port=free_port())
    assert set(deploy.run_dir(store).glob("*")) == before  # no registry entry, no server log


def test_server_that_dies_during_start_up_reports_its_log(store):
    # Trusted, but its class lives in the tests' folder, which the server cannot import.
    port = free_port()
    before = set(deploy.run_dir(store).glob("*.json"))
    with pytest.raises(FixativeError, match=r"(?s)stopped during start-up \(.*HandMade.*\)\. "
                                            r"Last lines of its log:\n.*error: "):
        deploy.start_endpoint(store, "handmade", port=port, trusted=["deploy_helpers.HandMade"])
    assert set(deploy.run_dir(store).glob("*.json")) == before
    assert not [r for r in deploy.endpoint_history(store, "handmade")]


def test_start_timeout_stops_the_process(store):
    port = free_port()
    with pytest.raises(FixativeError, match=rf"did not answer http://127.0.0.1:{port}/healthz "
                                            r"within 0.01 s and was stopped"):
        deploy.start_endpoint(store, "house", port=port, timeout=0.01)
    assert not [s for s in deploy.list_endpoints(store, probe=False) if s.endpoint.port == port]
    assert port_is_free("127.0.0.1", port)


def test_crashed_endpoint_is_detected_and_forgotten(store):
    ep = deploy.start_endpoint(store, "house", port=free_port())
    os.kill(ep.pid, signal.SIGKILL)  # as the OOM killer would
    [status] = wait_for(lambda: [s for s in deploy.list_endpoints(store)
                                 if s.endpoint.id == ep.id and s.status == "crashed"])
    assert f"process {ep.pid} is gone" in status.detail
    assert "Application startup complete" in status.detail or "Uvicorn" in status.detail
    result = deploy.stop_endpoint(store, ep.id)
    assert result.status == "crashed" and "had already stopped" in result.detail
    assert ep.id not in {s.endpoint.id for s in deploy.list_endpoints(store, probe=False)}
    events = [r.payload for r in deploy.endpoint_history(store, "house")
              if r.payload["id"] == ep.id]
    assert [e["event"] for e in events] == ["started", "crashed"]
    assert "Uvicorn running" in events[1]["log_tail"]
    assert not Path(ep.log_file).exists()


def test_pid_reused_by_another_program_is_never_signalled(store):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               start_new_session=True)
    try:
        ticks = deploy.process_start_ticks(sleeper.pid)
        fake = deploy.Endpoint(
            id="0123456789ab", name="house", version=store.resolve("house")[1],
            host="127.0.0.1", port=free_port(), pid=sleeper.pid, started="2024-01-01T00:00:00Z",
            log_file=str(deploy.run_dir(store) / "0123456789ab.log"), store=str(store.url),
            machine="", proc_start=ticks - 1, status="running")
        deploy.write_registry(deploy.run_dir(store), fake)
        [status] = [s for s in deploy.list_endpoints(store) if s.endpoint.id == fake.id]
        assert status.status == "stale" and not status.alive
        assert f"pid {sleeper.pid} now belongs to another program" in status.detail
        assert "time.sleep" in status.detail
        result = deploy.stop_endpoint(store, "0123")
        assert "nothing was signalled" in result.detail
        assert sleeper.poll() is None  # still running
        assert not (deploy.run_dir(store) / "0123456789ab.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_unreadable_registry_files_do_not_break_listing(store, endpoint):
    folder = deploy.run_dir(store)
    (folder / "garbage.json").write_text("{not json")
    (folder / "list.json").write_text("[1, 2, 3]")
    (folder / "partial.json").write_text(json.dumps({"id": "x", "name": "house"}))
    try:
        ids = [s.endpoint.id for s in deploy.list_endpoints(store, probe=False)]
        assert ids == [endpoint.id]
    finally:
        for name in ("garbage", "list", "partial"):
            (folder / f"{name}.json").unlink()


def test_find_endpoint_by_id_prefix_or_port(endpoint, store):
    assert deploy.find_endpoint(store, endpoint.id[:5]).id == endpoint.id
    assert deploy.find_endpoint(store, endpoint.port).id == endpoint.id
    assert deploy.find_endpoint(store, str(endpoint.port)).id == endpoint.id
    # a number that is neither the port nor the start of the (random, hex) id
    other = next(d for d in "123456789" if not endpoint.id.startswith(d))
    for key in ("zzz", "", other, "../../etc/passwd"):
        with pytest.raises(NotFound, match=rf"No endpoint '{key}' on this store\. Running "
                                           rf"endpoints: {endpoint.id} \(house@"):
            deploy.find_endpoint(store, key)


def test_parse_metrics_handles_real_and_broken_text(endpoint):
    with urllib.request.urlopen(endpoint.url + "/metrics", timeout=5) as response:
        requests, errors, rows = deploy.parse_metrics(response.read().decode())
    assert requests >= 1 and rows >= requests - errors
    assert deploy.parse_metrics("") == (0, 0, 0)
    assert deploy.parse_metrics("this is { not prometheus") == (0, 0, 0)


def test_client_examples_point_at_the_endpoint(endpoint, store):
    blocks = views.client_examples(store.meta("house", endpoint.version), endpoint.url)
    assert set(blocks) == {"curl", "Python (requests)", "Python (vetiver)", "R (httr2)"}
    for code in blocks.values():
        assert f"{endpoint.url}/predict" in code
        assert "__FIXATIVE" not in code


def test_stop_flushes_the_log_then_forgets(endpoint, store, house_data):
    rows = records_of(house_data.drop(columns="price").head(5))
    for _ in range(3):
        assert post(endpoint.url + "/predict", rows)[0] == 200
    result = deploy.stop_endpoint(store, endpoint.id)
    assert result.detail == "stopped"
    assert deploy.process_state(endpoint.pid, endpoint.proc_start) == "gone"
    # SIGTERM: everything answered is on disk, without waiting for a flush.
    recent = views.recent_requests(store, endpoint, 10_000)
    assert len(recent) >= 3 and (recent.head(3)["rows"] == 5).all()
    assert port_is_free("127.0.0.1", endpoint.port)
    assert not (deploy.run_dir(store) / f"{endpoint.id}.json").exists()
    assert not Path(endpoint.log_file).exists()
    events = [r.payload["event"] for r in deploy.endpoint_history(store, "house")
              if r.payload["id"] == endpoint.id]
    assert events == ["started", "stopped"]
    with pytest.raises(NotFound):
        deploy.stop_endpoint(store, endpoint.id)


def test_an_endpoint_whose_version_was_deleted_still_stops(tmp_path, capsys, house_model,
                                                           house_data):
    board = VersionStore(tmp_path / "board")
    sample = house_data.drop(columns="price")
    keep = board.write(bundle(house_model, sample, name="house")).version
    served = board.write(bundle(house_model, sample, name="house")).version
    ep = deploy.start_endpoint(board, f"house@{served}", port=free_port())
    try:
        assert [e.id for e in deploy.serving(board, "house", served)] == [ep.id]
        assert deploy.serving(board, "house", keep) == []
        from core.cli.main import main

        assert main(["delete", f"house@{served}", "--force", "--store", str(board.url)]) == 0
        err = capsys.readouterr().err
        assert err == (f"warning: the endpoint on port {ep.port} still serves house@{served} "
                       f"from memory; stop it with 'python -m core endpoints stop {ep.port}'.\n")
        result = deploy.stop_endpoint(board, ep.port)
        assert result.detail == "stopped"
        assert deploy.process_state(ep.pid, ep.proc_start) == "gone"
        assert deploy.list_endpoints(board) == []
        [stop] = [r for r in deploy.endpoint_history(board, "house")
                  if r.payload["event"] == "stopped"]
        assert stop.version is None and stop.payload["version"] == served
        frame = views.history_frame(deploy.endpoint_history(board, "house"))
        assert list(frame["version"]) == [served, served]  # stopped, started
        assert [v.version for v in board.versions("house")] == [keep]
    finally:
        if deploy.process_state(ep.pid, ep.proc_start) == "alive":
            deploy.stop_endpoint(board, ep.id, grace=2)


def test_endpoints_of_other_machines_are_neither_listed_nor_signalled(store):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               start_new_session=True)
    folder = deploy.run_dir(store)
    try:
        other = deploy.Endpoint(
            id="abcdefabcdef", name="house", version=store.resolve("house")[1],
            host="127.0.0.1", port=free_port(), pid=sleeper.pid, started="2024-01-01T00:00:00Z",
            log_file=str(folder / "abcdefabcdef.log"), store=str(store.url),
            machine="another-host", proc_start=deploy.process_start_ticks(sleeper.pid))
        deploy.write_registry(folder, other)
        assert other.id not in {s.endpoint.id for s in deploy.list_endpoints(store)}
        with pytest.raises(NotFound, match="No endpoint 'abcdefabcdef'"):
            deploy.stop_endpoint(store, other.id)
        assert sleeper.poll() is None
    finally:
        (folder / "abcdefabcdef.json").unlink(missing_ok=True)
        sleeper.kill()
        sleeper.wait()


def test_a_port_taken_by_another_program_is_not_taken_for_ours():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        port = sock.getsockname()[1]
        assert deploy._serves(port, os.getpid())
        other = subprocess.Popen([sys.executable, "-c", "pass"])
        other.wait()
        assert not deploy._serves(port, other.pid)
    finally:
        sock.close()
