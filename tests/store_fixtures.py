"""Store fixtures: a real moto S3 server on loopback, and stores on a folder or on S3.

Import the fixtures into a test module (``from store_fixtures import ...``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.store.versionstore import VersionStore

REPO = Path(__file__).resolve().parents[1]
S3_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
# pins leaves data.txt open in _create_meta (every release up to 0.9.2); Python reports it
# when the file is collected, which pytest turns into an error. Mark tests that pin_write.
PINS_LEAKS_A_FILE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a moto S3 server on 127.0.0.1 (one per test session)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path) -> dict[str, str]:
    """Environment for S3 boards on the moto server, with a fresh bucket."""
    env = dict(S3_KEYS, FIXATIVE_S3_ENDPOINT_URL=s3_server,
               FIXATIVE_INDEX_DIR=str(tmp_path / "index-cache"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import s3fs

    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_server, key="testing", secret="testing").mkdir(bucket)
    env["BUCKET"] = bucket
    return env


@pytest.fixture
def s3_store(s3_env) -> VersionStore:
    return VersionStore(f"s3://{s3_env['BUCKET']}/boards/team")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def any_store(request, tmp_path) -> VersionStore:
    """A store on a local folder, and the same on S3 (moto)."""
    if request.param == "local":
        return VersionStore(tmp_path / "board")
    return request.getfixturevalue("s3_store")


def run_python(code: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start ``python -c code`` with the repository importable."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=str(REPO),
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def board_versions(store: VersionStore, name: str) -> set[str]:
    """Complete version folders of ``name`` read straight from the board (no index)."""
    fs = store.fs
    try:
        entries = fs.ls(store.path(name), detail=False)
    except FileNotFoundError:
        return set()
    out = set()
    for entry in entries:
        version = entry.rstrip("/").rsplit("/", 1)[-1]
        if fs.exists(store.path(name, version, "data.txt")):
            out.add(version)
    return out


def argv_code(code: str, *args: str) -> str:
    """``code`` preceded by ``sys.argv = ['x', *args]``."""
    return f"import sys; sys.argv = ['x', {', '.join(repr(a) for a in args)}]\n" + code


SLOW_WRITER = """
import sys, time
import numpy as np, pandas as pd
from sklearn.linear_model import LinearRegression
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

class Stall:
    # Pickled after the big array: the process is killed while the model file is half written.
    def __reduce__(self):
        print("stalling", flush=True)
        time.sleep(120)
        return (int, (0,))

X = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0) ** 2})
model = LinearRegression().fit(X, X.a)
b = bundle(model, X, name="houses")
model.ballast_ = [np.random.default_rng(0).normal(size=3_000_000), Stall()]
VersionStore(sys.argv[1]).write(b)
print("finished", flush=True)
"""


def kill_mid_write(board: str, env: dict[str, str] | None = None) -> None:
    """Start a writer of a big model and SIGKILL it while the model file is half written."""
    proc = run_python(argv_code(SLOW_WRITER, board), env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "stalling", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None and proc.returncode is None:
            proc.kill()
        proc.communicate(timeout=30)  # reaps the process and closes its pipes
    assert proc.returncode == -signal.SIGKILL
