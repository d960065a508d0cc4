"""The OpenAPI spec tells the truth: schemathesis, with every check that applies, finds no
request the spec calls valid that the server refuses, nor one it calls invalid that the
server accepts, against a real uvicorn server on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from core.model.bundle import bundle
from core.serving.openapi import build_openapi
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]
SERVE = """
import sys, uvicorn
from core.serving.app import create_app
from core.store.versionstore import VersionStore
store = VersionStore(sys.argv[1])
app = create_app(store.read("house"), tokens=[], log=False, max_body_bytes=256 * 1024)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""
# auth checks need a protected server and credentials; stateful ones, linked resources:
# neither applies to a prediction server
NOT_APPLICABLE = "ignored_auth,use_after_free,ensure_resource_availability"
RUN = ("-m", "from schemathesis.cli import schemathesis; schemathesis()")


@pytest.fixture(scope="module")
def server(tmp_path_factory, house_model, house_data):
    board = str(tmp_path_factory.mktemp("openapi") / "board")
    VersionStore(board).write(bundle(house_model, house_data.drop(columns=["price"]),
                                     name="house"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVE, board, str(port)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.process
def test_schemathesis_with_every_check_that_applies(server):
    cli = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [str(cli), "run", f"{server}/openapi.json", "--checks", "all",
         "--exclude-checks", NOT_APPLICABLE, "--phases", "examples,coverage,fuzzing",
         "--max-examples", "25", "--generation-deterministic", "--no-color"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-6000:]


def test_the_spec_declares_what_the_server_accepts(house_model, house_data):
    spec = build_openapi(bundle(house_model, house_data.drop(columns=["price"]), name="h"))
    csv = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["text/csv"]["schema"]
    assert csv["pattern"].startswith("^bedrooms,bathrooms,")  # a header, then rows
    split = spec["components"]["schemas"]["Split"]["anyOf"][0]["properties"]
    assert {"type": "null"} in split["columns"]["oneOf"]
    envelope = spec["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]
    params = envelope["schema"]["anyOf"][0]["properties"]["params"]
    assert params["type"] == ["object", "null"]
    assert {"413", "429"} <= set(spec["paths"]["/predict"]["post"]["responses"])
