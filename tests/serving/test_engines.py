"""Engines as a real server process: the onnx engine never unpickles the model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from starlette.testclient import TestClient

from core import settings
from core.cli.main import main as cli
from core.model.bundle import bundle
from core.serving.app import create_app
from core.serving.engine import SklearnEngine, check_engine
from core.serving.process import ServeSettings, load_bundle
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data):
    """A compiled version whose pickle is then overwritten with garbage."""
    s = VersionStore(str(tmp_path_factory.mktemp("engines") / "board"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(settings.COMPILE_ENV, "1")
        info = s.write(bundle(house_model, house_data.drop(columns=["price"]), name="house"))
    Path(s.path("house", info.version, "house.joblib")).write_bytes(b"\x80\x05garbage, not a model")
    return s


def _serve(board, *args):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "house", "--store",
                             str(board.url), "--port", str(port), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


def _wait(proc, url):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return True
        except requests.ConnectionError:
            time.sleep(0.1)
    return False


@pytest.mark.process
def test_a_server_on_the_graph_serves_although_the_pickle_is_unreadable(board, house_model,
                                                                        house_data):
    proc, url = _serve(board)
    try:
        assert _wait(proc, url), proc.stdout.read().decode() if proc.stdout else ""
        feats = house_data.drop(columns=["price"]).head(200)
        r = requests.post(f"{url}/predict", data=feats.to_json(orient="records"), timeout=10)
        assert r.status_code == 200
        np.testing.assert_allclose(r.json()["predict"], house_model.predict(feats), rtol=1e-5)
        engine = requests.get(f"{url}/metadata", timeout=5).json()["user"]["engine"]
        assert engine["name"] == "onnx" and engine["verified"] is True
        assert "onnx (compiled graph: verified on 800 sample rows" in requests.get(
            url, timeout=5).text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert "Engine: onnx" in out


@pytest.mark.process
def test_the_sklearn_engine_on_that_version_fails_on_the_pickle(board):
    proc, _url = _serve(board, "--engine", "sklearn")
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 1 and out.startswith("error:")
    assert "Traceback" not in out


def test_engine_onnx_without_a_graph_is_refused_with_the_reason(tmp_path, house_model,
                                                                house_data, capsys):
    s = VersionStore(str(tmp_path / "b"))
    info = s.write(bundle(house_model, house_data.drop(columns=["price"]), name="plain"))
    with pytest.raises(Exception, match="never compiled"):
        load_bundle(ServeSettings(name="plain", version=info.version, store=str(s.url),
                                  engine="onnx"))
    served = load_bundle(ServeSettings(name="plain", version=info.version, store=str(s.url)))
    assert isinstance(served.engine, SklearnEngine)
    assert cli(["serve", "plain", "--store", str(s.url), "--port", str(free_port()),
                "--engine", "onnx"]) == 1
    assert "--engine onnx: this version has no compiled graph" in capsys.readouterr().err


def test_auto_falls_back_to_sklearn_when_the_graph_is_not_verified(tmp_path, house_model,
                                                                   house_data, monkeypatch):
    s = VersionStore(str(tmp_path / "b"))
    monkeypatch.setenv(settings.COMPILE_ENV, "1")
    info = s.write(bundle(house_model, house_data.drop(columns=["price"]), name="h"))
    ref = ServeSettings(name="h", version=info.version, store=str(s.url))
    assert load_bundle(ref).engine.name == "onnx"
    monkeypatch.setenv(settings.ONNX_TOLERANCE_ENV, "0")
    served = load_bundle(ref)
    assert served.engine.name == "sklearn"
    with TestClient(create_app(served.bundle, engine=served.engine, tokens=[])) as c:
        engine = c.get("/metadata").json()["user"]["engine"]
    assert engine["name"] == "sklearn" and engine["verified"] is False
    assert engine["compiled"].startswith("not verified on 800 sample rows (tolerance 0 ")
    ref.engine = "onnx"  # the override serves the graph anyway, and says it is not verified
    assert load_bundle(ref).engine.name == "onnx"


@pytest.mark.parametrize("value", ["", "ONNX", " sklearn "])
def test_engine_names(value):
    assert check_engine(value) in ("auto", "onnx", "sklearn")


@pytest.mark.parametrize("value", ["tensorflow", "onnx;rm -rf /", "../x", "x" * 10_000])
def test_unknown_engines_are_refused(value):
    with pytest.raises(Exception, match="--engine must be one of auto, sklearn, onnx"):
        check_engine(value)


@pytest.mark.process
def test_a_shadow_challenger_on_its_graph_is_never_unpickled(tmp_path, house_model,
                                                             house_data):
    """Champion and challenger both compiled, both pickles garbage: the pair serves, the
    challenger scores from its graph and logs as the challenger."""
    s = VersionStore(str(tmp_path / "pair"))
    feats = house_data.drop(columns=["price"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(settings.COMPILE_ENV, "1")
        first = s.write(bundle(house_model, feats, name="house")).version
        second = s.write(bundle(house_model, feats, name="house")).version
    for v in (first, second):
        Path(s.path("house", v, "house.joblib")).write_bytes(b"\x80\x05garbage, not a model")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", f"house@{first}", "--store",
                             str(s.url), "--port", str(port), "--shadow", f"house@{second}"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        assert _wait(proc, url), proc.stdout.read().decode() if proc.stdout else ""
        rows = feats.head(20)
        r = requests.post(f"{url}/predict", data=rows.to_json(orient="records"), timeout=10)
        assert r.status_code == 200
        np.testing.assert_allclose(r.json()["predict"], house_model.predict(rows), rtol=1e-5)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pair = requests.get(f"{url}/metadata", timeout=5).json()["challenger"]
            if pair.get("scored", 0) >= 1:
                break
            time.sleep(0.2)
        assert pair["version"] == second and pair["mode"] == "shadow"
        assert pair["engine"]["name"] == "onnx"
        assert pair.get("scored", 0) >= 1 and pair.get("failed", 0) == 0, pair
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert "Challenger house@" in out and "Traceback" not in out
