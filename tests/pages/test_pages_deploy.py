"""Deploy page under AppTest: start and stop a real endpoint, busy ports, crashed endpoints."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core import settings
from core.deploy import endpoints as deploy
from core.model.bundle import bundle
from core.serving.netcheck import free_port, port_is_free
from core.store.versionstore import VersionStore

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "deploy.py")


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data) -> VersionStore:
    store = VersionStore(tmp_path_factory.mktemp("pages-deploy") / "board")
    with pytest.MonkeyPatch.context() as mp:  # compiled: endpoints serve its graph
        mp.setenv(settings.COMPILE_ENV, "1")
        info = store.write(bundle(house_model, house_data.drop(columns="price"), name="house"))
    store.set_alias("house", "production", info.version)
    return store


@pytest.fixture
def env(board, monkeypatch):
    monkeypatch.setenv("FIXATIVE_STORE", str(board.url))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    return board


def page(model: str | None = "house") -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if model:
        at.query_params["model"] = model
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_empty_store_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "empty"))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    at = page(model=None)
    assert any("has no models yet. Upload one on the Upload page" in t for t in texts(at.info))
    assert not at.button


def test_without_a_selection_running_endpoints_still_show(env):
    at = page(model=None)
    assert texts(at.info)[0].startswith("Choose a model in the sidebar to start an endpoint")
    assert any("No endpoints are running" in t for t in texts(at.info))
    assert not at.get("download_button")


def test_no_endpoints_yet(env):
    at = page()
    assert any("No endpoints are running. Start one above" in t for t in texts(at.info))
    version = env.resolve("house")[1]
    assert at.selectbox(key="deploy_target").options == [
        f"version {version} (selected in the sidebar)", f"alias production (now {version})"]
    port = at.number_input(key="deploy_port").value
    assert port >= 8080 and port_is_free("127.0.0.1", port)
    # pinning with hashes is on: the bundle is prepared on request
    assert not at.get("download_button")
    assert at.button(key="deploy_docker_prepare")
    assert any(f"python -m core docker house@{version} OUT_DIR`" in t for t in texts(at.caption))
    at.checkbox(key="deploy_docker_lock").uncheck().run()
    [download] = at.get("download_button")
    assert download.label == "Download the Docker bundle (.zip)"
    assert any(f"python -m core docker house@{version} OUT_DIR --no-lock" in t
               for t in texts(at.caption))


def test_a_pinned_kubernetes_bundle_is_prepared_or_the_reason_shown(env, monkeypatch):
    at = page()
    at.checkbox(key="deploy_docker_k8s").check().run()
    assert any("--k8s" in t and "kubectl apply -k" in t for t in texts(at.caption))
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_NO_CACHE", "1")
    monkeypatch.setenv("UV_OFFLINE", "1")
    at.button(key="deploy_docker_prepare").click().run()
    assert not at.exception
    assert any("No Docker bundle: Cannot pin the image's packages with hashes" in t
               and "--no-lock" in t for t in texts(at.error))
    assert not at.get("download_button")
    for name in ("UV_INDEX_URL", "UV_NO_CACHE", "UV_OFFLINE"):
        monkeypatch.delenv(name)
    at.button(key="deploy_docker_prepare").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [download] = at.get("download_button")
    assert download.label == "Download the Docker bundle (.zip)"


def test_a_model_that_needs_trust_gets_no_docker_bundle(tmp_path, monkeypatch):
    from deploy_helpers import HandMade

    store = VersionStore(tmp_path / "board")
    store.write(bundle(HandMade(), name="handmade"))
    monkeypatch.setenv("FIXATIVE_STORE", str(store.url))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    at = page(model="handmade")
    [error] = [t for t in texts(at.error) if t.startswith("No Docker bundle for this version")]
    assert "deploy_helpers.HandMade" in error and "--trust deploy_helpers.HandMade" in error
    assert not at.get("download_button")
    # starting an endpoint asks for trust in exactly its names
    assert any("imports names outside the safety allowlist: `deploy_helpers.HandMade`" in t
               for t in texts(at.warning))
    [trust] = [c for c in at.checkbox if c.key.startswith("deploy_trust_")]
    assert "`deploy_helpers.HandMade`" in trust.label
    at.button(key="FormSubmitter:deploy_start_form-Start endpoint").click().run()
    assert any("would import 1 name(s) outside the safety allowlist" in t for t in texts(at.error))
    assert not any("covers only the served version" in t for t in texts(at.caption))
    assert deploy.list_endpoints(store, probe=False) == []
    # trusted, the server gets the name (and here cannot import the tests' class)
    [trust] = [c for c in at.checkbox if c.key.startswith("deploy_trust_")]
    trust.check()
    at.button(key="FormSubmitter:deploy_start_form-Start endpoint").click().run()
    [error] = [t for t in texts(at.error) if "stopped during start-up" in t]
    assert "outside the safety allowlist" not in error
    assert deploy.list_endpoints(store, probe=False) == []


def _predict(url: str, house_data) -> None:
    rows = house_data.drop(columns="price").head(2).to_json(orient="records").encode()
    request = urllib.request.Request(url + "/predict", data=rows,
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


@pytest.mark.process
def test_start_watch_and_stop_a_real_endpoint(env, house_data):
    at = page()
    port = free_port()
    at.selectbox(key="deploy_target").set_value("house:production")
    at.number_input(key="deploy_port").set_value(port)
    at.button[0].click()  # the form's submit button
    at.run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    [running] = deploy.list_endpoints(env)
    try:
        ep = running.endpoint
        assert (ep.port, ep.alias) == (port, "production")
        url = f"http://127.0.0.1:{port}"
        assert texts(at.success) == [f"Started {ep.label}: {url}/"]
        # The next start is offered the next free port.
        assert at.number_input(key="deploy_port").value > port
        assert "Stop" in [b.label for b in at.button]
        codes = [c.value for c in at.code]
        assert any(f"curl -X POST {url}/predict" in c for c in codes)
        assert any("vetiver.vetiver_endpoint" in c for c in codes)
        assert any("library(httr2)" in c for c in codes)
        assert any("No requests logged yet" in t for t in texts(at.caption))
        assert any(t.startswith("Engine: onnx (compiled graph: verified on 800 sample rows")
                   for t in texts(at.caption)), texts(at.caption)
        assert any(t.startswith("Compiled engine (ONNX): verified") for t in texts(at.caption))

        _predict(url, house_data)
        deadline = time.monotonic() + 15
        while True:
            at.button(key="deploy_refresh").click().run()
            frames = [d.value for d in at.dataframe]
            recent = [f for f in frames if "request_id" in f.columns]
            if recent or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        [recent_frame] = recent
        assert recent_frame.iloc[0]["rows"] == 2 and recent_frame.iloc[0]["status"] == 200
        [table] = [f for f in frames if "status" in f.columns and "url" in f.columns]
        assert table.iloc[0]["status"] == "running" and table.iloc[0]["requests"] == 1

        at.button(key=f"deploy_stop_{ep.id}").click().run()
        assert not at.exception, at.exception
    finally:
        if deploy.process_state(ep.pid, ep.proc_start) == "alive":
            deploy.stop_endpoint(env, ep, grace=2)
    assert texts(at.success) == [f"{ep.label}: stopped."]
    assert deploy.list_endpoints(env) == []
    assert deploy.process_state(ep.pid, ep.proc_start) == "gone"
    assert any("No endpoints are running" in t for t in texts(at.info))
    history = [d.value for d in at.dataframe if "event" in d.value.columns]
    assert list(history[0]["event"][:2]) == ["stopped", "started"]


def test_busy_port_is_refused_with_the_reason(env):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        at = page()
        at.number_input(key="deploy_port").set_value(port)
        at.button[0].click()
        at.run()
    finally:
        sock.close()
    assert not at.exception, at.exception
    [error] = texts(at.error)
    assert error.startswith(f"port {port} is already in use (by pid ")
    assert deploy.list_endpoints(env) == []


def test_crashed_endpoint_is_shown_and_can_be_forgotten(env):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    folder = deploy.run_dir(env)
    (folder / "feedc0ffee00.log").parent.mkdir(parents=True, exist_ok=True)
    (folder / "feedc0ffee00.log").write_text("INFO: Uvicorn running\nKilled\n")
    fake = deploy.Endpoint(
        id="feedc0ffee00", name="house", version=env.resolve("house")[1], host="127.0.0.1",
        port=free_port(), pid=gone.pid, started="2024-05-03T10:00:00Z",
        log_file=str(folder / "feedc0ffee00.log"), store=str(env.url), proc_start=1,
        status="running")
    (folder / "feedc0ffee00.json").write_text(json.dumps(fake.to_dict()))
    at = page()
    assert any(f"process {gone.pid} is gone; its log ends: INFO: Uvicorn running\nKilled" in t
               for t in texts(at.error))
    at.button(key="deploy_stop_feedc0ffee00").click().run()
    assert not at.exception, at.exception
    assert texts(at.success) == [f"{fake.label}: forgotten (it had already stopped)."]
    assert deploy.list_endpoints(env) == []


def test_replicas_on_the_board_show_wherever_they_run(tmp_path, monkeypatch, house_model,
                                                       house_data):
    import json
    from datetime import UTC, datetime

    from core.serving import heartbeat
    from core.store.paths import replica_file, replicas_dir

    store = VersionStore(tmp_path / "board")
    info = store.write(bundle(house_model, house_data.drop(columns="price"), name="house"))
    monkeypatch.setenv("FIXATIVE_STORE", str(store.url))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    at = page()
    assert any("No replica reports to this board" in t for t in texts(at.info))

    now = datetime.now(UTC).isoformat()
    store.fs.makedirs(replicas_dir(store), exist_ok=True)
    for rid, version, seen in (("pod-a-1-x", info.version, now), ("pod-b-1-y", "v0", now),
                               ("pod-c-1-z", info.version, "2020-01-01T00:00:00Z")):
        store.fs.pipe_file(replica_file(store, rid), json.dumps({
            "kind": heartbeat.KIND, "id": rid, "model": "house", "version": version,
            "host": "house-7d9f-abc", "node": "node-1", "pid": 1, "requests": 12,
            "rows": 40, "errors": 0, "last_seen": seen, "started": seen}).encode())
    store.fs.pipe_file(replica_file(store, "forged"), b"<script>alert(1)</script>")
    at = page()
    [frame] = [d.value for d in at.dataframe if "health" in d.value.columns]
    assert sorted(frame["health"]) == ["fresh", "fresh", "stale"]
    assert set(frame["where"]) == {"remote"} and frame["requests"].tolist() == [12, 12, 12]
    markdown = " ".join(texts(at.markdown))
    assert "more than one version is served" in markdown and "1 stale" in markdown
    assert any("stopped where they were started" in t for t in texts(at.caption))
    assert any("Skipped heartbeat file forged.json: not JSON" in t for t in texts(at.warning))
    at.button(key="deploy_fleet_prune").click().run()
    assert not at.exception
    [frame] = [d.value for d in at.dataframe if "health" in d.value.columns]
    assert sorted(frame["health"]) == ["fresh", "fresh"]
