"""Docker bundles: contents, pins, Dockerfile lint, hostile output folders, and the bundle
served from its own folder in a fresh virtualenv."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import metrics_helpers
import numpy as np
import pytest
from deploy_helpers import deploy_store
from store_fixtures import PINS_LEAKS_A_FILE

from core.deploy import docker as dockerbundle
from core.errors import Conflict, CorruptData, InvalidArgument, NotFound, UnsafeModel
from core.model.bundle import BundleMeta
from core.serving.netcheck import free_port
from core.serving.process import read_version_dir

HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data):
    return deploy_store(tmp_path_factory.mktemp("docker"), house_model, house_data)


@pytest.fixture(scope="module")
def written(store, tmp_path_factory) -> Path:
    return dockerbundle.write_bundle(store, "house:production",
                                     tmp_path_factory.mktemp("bundles") / "house")


def _meta(**environment) -> BundleMeta:
    from core.model.prototype import Prototype

    return BundleMeta(name="m", model_class="X", library="sklearn", task="regression",
                      prototype=Prototype.from_n_features(2), environment=environment)


# -- contents ----------------------------------------------------------------------------------

def test_bundle_holds_model_settings_server_and_docs(written, store):
    version = store.resolve("house:production")[1]
    assert sorted(p.name for p in written.iterdir()) == [
        ".dockerignore", "Dockerfile", "README.md", "core", "model", "requirements.txt",
        "serve.json"]
    assert sorted(p.name for p in (written / "model").iterdir()) == [
        "data.txt", "data.txt.sha256", "fixative.json", "house.joblib", "sample.parquet"]
    for name in ("data.txt", "data.txt.sha256", "fixative.json", "house.joblib",
                 "sample.parquet"):
        assert (written / "model" / name).read_bytes() == Path(
            store.path("house", version, name)).read_bytes()
    settings = json.loads((written / "serve.json").read_text())
    assert settings["name"] == "house" and settings["version"] == version
    readme = (written / "README.md").read_text()
    assert f"# house {version}" in readme and "docker run" in readme
    assert "FIXATIVE_STORE" in readme and "FIXATIVE_WORKERS" in readme


def test_only_the_server_modules_are_copied(written):
    core = written / "core"
    copied = {p.relative_to(core).as_posix() for p in core.rglob("*.py")}
    assert {"__init__.py", "serving/__init__.py", "serving/app.py", "serving/process.py",
            "store/versionstore.py", "safety/loader.py", "store/predlog.py",
            "model/prototype.py", "errors.py", "serving/netcheck.py",
            "serving/metrics.py"} <= copied
    # The workbench, the CLI and the endpoint manager are not needed to serve.
    assert not copied & {"workbench/ui.py", "cli/main.py", "cli/deploy.py",
                         "deploy/endpoints.py", "deploy/docker.py", "workbench/charts.py",
                         "__main__.py"}
    assert not (core / "workbench").exists() and not (core / "cli").exists()
    assert (written / "core" / "serving" / "templates").is_dir()
    assert not list(written.rglob("__pycache__"))


def test_requirements_pin_the_model_and_the_server(written, store):
    lines = (written / "requirements.txt").read_text().splitlines()
    pins = dict(line.split(";")[0].split("==") for line in lines)
    packages = store.meta("house", store.resolve("house")[1]).environment["packages"]
    for dist, version in packages.items():
        assert pins[dist] == version
    for dist in ("starlette", "uvicorn", "prometheus-client", "pyarrow", "fsspec", "duckdb"):
        [key] = [k for k in pins if k.lower() == dist]
        assert pins[key] == importlib.metadata.version(dist)
    assert not {k.lower() for k in pins} & {"streamlit", "plotly", "pytest", "s3fs"}
    # uvicorn's speedups travel with the bundle when they are installed here.
    for dist, marker in dockerbundle.SPEEDUPS.items():
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        assert f"{dist}=={installed}{marker}" in lines


def test_requirements_keep_the_versions_recorded_with_the_model():
    meta = _meta(packages={"scikit-learn": "1.4.2", "numpy": "1.26.4", "lightgbm": "4.3.0"})
    lines = dockerbundle.requirements(meta)
    assert {"scikit-learn==1.4.2", "numpy==1.26.4", "lightgbm==4.3.0"} <= set(lines)
    assert f"uvicorn=={importlib.metadata.version('uvicorn')}" in lines
    assert len({line.split("==")[0].lower() for line in lines}) == len(lines)


def test_requirements_with_s3_add_s3fs():
    lines = dockerbundle.requirements(_meta(), extra=dockerbundle.S3_PACKAGES)
    assert f"s3fs=={importlib.metadata.version('s3fs')}" in lines


def test_requirements_refuse_what_cannot_be_pinned():
    with pytest.raises(InvalidArgument, match="Cannot pin no-such-dist-xyz: not installed here"):
        dockerbundle.requirements(_meta(), extra=("no-such-dist-xyz",))


HERE_PATCH = ".".join(map(str, sys.version_info[:3]))


@pytest.mark.parametrize(("environment", "tag", "patch"), [
    ({"python_version": [3, 12, 4], "python": "3.12.4"}, "3.12", "3.12.4"),
    ({"python": "3.10.14"}, "3.10", "3.10.14"),
    ({}, HERE, HERE_PATCH),
    ({"python_version": ["x"], "python": "garbage"}, HERE, HERE_PATCH),
    # only major.minor known, and not this Python's: the newest known patch release
    ({"python": "3.13"}, "3.13", dockerbundle.LATEST_PATCH["3.13"]),
    ({"python_version": [3, 12]}, "3.12", dockerbundle.LATEST_PATCH["3.12"]
     if HERE != "3.12" else HERE_PATCH),
])
def test_base_image_is_the_models_python_to_the_patch(environment, tag, patch):
    assert dockerbundle.python_tag(_meta(**environment)) == tag
    assert dockerbundle.python_patch(_meta(**environment)) == patch
    assert f"FROM python:{patch}-slim\n" in dockerbundle.dockerfile(_meta(**environment))


def test_dockerfile_runs_as_non_root_with_a_python_healthcheck(written):
    text = (written / "Dockerfile").read_text()
    assert "USER 10001:10001" in text
    assert 'HEALTHCHECK' in text and '"python", "-c"' in text and "curl" not in text
    assert "EXPOSE 8080" in text and "FIXATIVE_WORKERS=1" in text
    assert 'CMD ["python", "-m", "core.serving.process", "serve.json"]' in text


@pytest.mark.parametrize(("workers", "port", "locked"), [(1, 8080, False), (4, 9000, False),
                                                        (2, 8080, True)])
def test_dockerfile_passes_hadolint(tmp_path, workers, port, locked):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    meta = _meta(python_version=[3, 11, 7])
    (tmp_path / "Dockerfile").write_text(dockerbundle.dockerfile(meta, port=port,
                                                                 workers=workers,
                                                                 locked=locked))
    result = subprocess.run([hadolint, "--failure-threshold", "info", "Dockerfile"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zip_holds_the_same_bundle(store, written):
    file_name, data = dockerbundle.bundle_zip(store, "house:production")
    version = store.resolve("house:production")[1]
    assert file_name == f"house-{version}-docker.zip"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        top = f"house-{version}-docker/"
        assert {top + "Dockerfile", top + "serve.json", top + "model/house.joblib",
                top + "core/serving/app.py", top + "requirements.txt"} <= names
        assert archive.read(top + "requirements.txt") == (written / "requirements.txt"
                                                          ).read_bytes()


# -- hostile output folders and references ---------------------------------------------------------

def test_non_empty_folder_is_refused_without_force(store, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(Conflict, match="already exists and is not empty; choose a new folder, "
                                       "or pass --force"):
        dockerbundle.write_bundle(store, "house", tmp_path)
    with pytest.raises(Conflict, match="does not hold a Docker bundle .* refusing to replace it "
                                       "even with --force"):
        dockerbundle.write_bundle(store, "house", tmp_path, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_force_replaces_an_earlier_bundle(store, tmp_path):
    out = dockerbundle.write_bundle(store, "house", tmp_path / "b", workers=2)
    (out / "stale.txt").write_text("from before")
    dockerbundle.write_bundle(store, "house", out, force=True)
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "serve.json").read_text())["workers"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no staging folder left behind


def test_output_that_is_a_file_is_refused(store, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(Conflict, match="exists and is not a folder"):
        dockerbundle.write_bundle(store, "house", target)
    assert target.read_text() == "x"


def test_unwritable_location_is_refused(store):
    with pytest.raises(InvalidArgument, match=r"Cannot write to /sys: .*Choose a folder you can "
                                         "write to"):
        dockerbundle.write_bundle(store, "house", "/sys/fixative-bundle")


def test_empty_output_path_is_refused(store):
    with pytest.raises(InvalidArgument, match="No output folder given"):
        dockerbundle.write_bundle(store, "house", "")


@pytest.mark.parametrize(("ref", "error", "message"), [
    ("nope", NotFound, "No model 'nope'"),
    ("house:staging", NotFound, "No alias 'staging'"),
    ("../etc", Exception, "name"),
    ("", Exception, "empty"),
])
def test_bad_references(store, tmp_path, ref, error, message):
    with pytest.raises(error, match=message):
        dockerbundle.write_bundle(store, ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("workers", [0, -1, 65, "two"])
def test_bad_worker_counts(store, tmp_path, workers):
    with pytest.raises(InvalidArgument, match="workers"):
        dockerbundle.write_bundle(store, "house", tmp_path / "out", workers=workers)


# pins-python leaves the handle of the data.txt it writes to the garbage collector.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <_io.FileIO name=:pytest.PytestUnraisableExceptionWarning")
@PINS_LEAKS_A_FILE
def test_versions_pinned_by_pins_are_refused(store, house_model, tmp_path):
    import pins

    board = pins.board_folder(store.path(), allow_pickle_read=True)
    board.pin_write(house_model, "pinned-house", type="joblib")
    store.reindex()
    with pytest.raises(InvalidArgument, match="was pinned by pins or vetiver.*write it again with "
                                         "Fixative"):
        dockerbundle.write_bundle(store, "pinned-house", tmp_path / "out")


# -- loading a bundled version folder ------------------------------------------------------------

def test_version_folder_loads_like_the_store(written, store, house_data):
    loaded = read_version_dir(written / "model")
    version = store.resolve("house:production")[1]
    assert loaded.version == version and loaded.meta.name == "house"
    rows = house_data.drop(columns="price").head(20)
    np.testing.assert_allclose(loaded.predict(rows), store.read("house", version).predict(rows))


def test_tampered_model_file_is_refused(written, tmp_path):
    copy = shutil.copytree(written / "model", tmp_path / "model")
    data = bytearray((copy / "house.joblib").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "house.joblib").write_bytes(bytes(data))
    with pytest.raises(CorruptData, match="house.joblib does not match the sha256 recorded"):
        read_version_dir(copy)


def test_folder_without_a_version_is_refused(tmp_path):
    with pytest.raises(NotFound, match="holds no model version"):
        read_version_dir(tmp_path)


def test_a_bundle_whose_model_needs_trust_is_refused_unless_trusted(store, tmp_path):
    with pytest.raises(UnsafeModel, match=r"--trust deploy_helpers\.HandMade.*so no bundle "
                                          "is written until each name is trusted"):
        dockerbundle.write_bundle(store, "handmade", tmp_path / "b")
    assert list(tmp_path.iterdir()) == []  # nothing half-written
    out = dockerbundle.write_bundle(store, "handmade", tmp_path / "b",
                                    trusted=["deploy_helpers.HandMade"])
    settings = json.loads((out / "serve.json").read_text())
    assert settings["trusted"] == ["deploy_helpers.HandMade"]
    # the folder alone still trusts nothing: the server passes the trusted names
    with pytest.raises(UnsafeModel, match="HandMade"):
        read_version_dir(out / "model")


# -- served from its own folder, in a fresh virtualenv --------------------------------------------

def _make_venv(where: Path, requirements: Path) -> Path:
    """A fresh virtualenv with the bundle's requirements (uv when available: it reuses its
    download cache; pip otherwise)."""
    python = where / "bin" / "python"
    try:
        import uv

        uv_bin = uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        uv_bin = None
    if uv_bin:
        subprocess.run([uv_bin, "venv", "-q", "--python", sys.executable, str(where)],
                       check=True)
        subprocess.run([uv_bin, "pip", "install", "-q", "--python", str(python), "-r",
                        str(requirements)], check=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                       check=True)
    return python


@pytest.fixture(scope="module")
def venv_python(written, tmp_path_factory) -> Path:
    return _make_venv(tmp_path_factory.mktemp("venv") / "v", written / "requirements.txt")


def _bundle_env() -> dict[str, str]:
    # Nothing of this checkout on the path. Bytecode may be written: the venv is fresh, so
    # without it every start would compile scikit-learn, scipy and pandas again.
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONDONTWRITEBYTECODE")}


@pytest.mark.process
def test_bundle_serves_from_its_own_folder_in_a_fresh_venv(written, venv_python, store,
                                                           house_data, tmp_path):
    env = _bundle_env()
    where = subprocess.run([str(venv_python), "-c", "import core; print(core.__file__)"],
                           cwd=written, env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()) == written / "core" / "__init__.py"

    port = free_port()
    log_board = tmp_path / "log-board"
    env.update(PORT=str(port), FIXATIVE_HOST="127.0.0.1", FIXATIVE_STORE=str(log_board))
    proc = subprocess.Popen([str(venv_python), "-m", "core.serving.process", "serve.json"],
                            cwd=written, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "bundle server did not start"
                time.sleep(0.2)
        rows = house_data.drop(columns="price").sample(50, random_state=3)
        request = urllib.request.Request(
            url + "/predict", data=rows.to_json(orient="records").encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            served = json.loads(response.read())["predict"]
        expected = store.read_ref("house:production").predict(rows)
        np.testing.assert_allclose(served, expected)
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown; a supervisor exits 0.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.communicate()[0]
    assert f"Serving house@{store.resolve('house:production')[1]} on 127.0.0.1:{port}" in output
    # FIXATIVE_STORE names the board the bundle logs predictions to.
    segments = list(log_board.glob(".fixative/logs/house/*/*/*.parquet"))
    assert segments


@pytest.mark.process
def test_bundle_with_two_workers_reports_metrics_of_the_whole_server(written, venv_python,
                                                                      house_data, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    env = _bundle_env()
    env.update(PORT=str(port), FIXATIVE_HOST="127.0.0.1", FIXATIVE_WORKERS="2",
               TMPDIR=str(tmp))
    proc = subprocess.Popen([str(venv_python), "-m", "core.serving.process", "serve.json"],
                            cwd=written, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        metrics_helpers.wait_for_workers(url, 2)
        (metrics_dir,) = tmp.glob("fixative-metrics-*")
        body = house_data.drop(columns="price").head(3).to_json(orient="records").encode()
        rounds, statuses = metrics_helpers.send_until_every_worker_answered(
            url, metrics_dir, [body] * 20)
        assert set(statuses) == {200}
        n = 20 * rounds
        assert sum(metrics_helpers.settled_predict_counts(metrics_dir, n).values()) == n
        for _ in range(6):
            text = metrics_helpers.scrape(url)
            assert metrics_helpers.value(text, "fixative_requests_total", route="/predict") == n
            assert metrics_helpers.value(text, "fixative_rows_predicted_total") == 3 * n
            assert metrics_helpers.value(text, "fixative_worker_processes") == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.communicate()[0]
    assert "with 2 workers" in output
    assert not list(tmp.glob("fixative-metrics-*"))


# -- the bundle's entry point, with wrong input ----------------------------------------------------

@pytest.mark.parametrize(("content", "env", "message"), [
    (None, {}, "error: Cannot read settings file"),
    ("{not json", {}, "error: Cannot read settings file"),
    ('["a list"]', {}, "error: Serve settings must be a JSON object with at least 'name'"),
    ('{"name": "house"}', {}, "error: Serve settings must be a JSON object"),
    ('{"name": "house", "version": "v"}', {"PORT": "eighty"}, "error: port 'eighty' is not a"),
    ('{"name": "house", "version": "v"}', {"FIXATIVE_WORKERS": "0"},
     "error: workers must be between 1 and 64"),
    ('{"name": "house", "version": "v"}', {"FIXATIVE_HOST": "somewhere"},
     "error: host 'somewhere' is not an IP address"),
    ('{"name": "house", "version": "v"}', {}, "error: .*holds no model version"),
])
def test_entry_point_refuses_bad_settings(tmp_path, monkeypatch, capsys, content, env, message):
    import re

    from core.serving.process import main as entry

    for key in ("PORT", "FIXATIVE_WORKERS", "FIXATIVE_HOST"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = tmp_path / "serve.json"
    if content is not None:
        settings.write_text(content)
    assert entry([str(settings)]) == 1
    err = capsys.readouterr().err
    assert re.match(message, err), err


def test_entry_point_usage(capsys):
    from core.serving.process import main as entry

    assert entry([]) == 2
    assert "usage: python -m core.serving.process SETTINGS.json" in capsys.readouterr().err


# -- a bundle served from the compiled graph ---------------------------------------------------

# Runs the bundle's entry point with scikit-learn, SciPy, joblib and skl2onnx made
# unimportable, as they are in an image built from the bundle's requirements.
NO_SKLEARN = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sklearn", "scipy", "joblib", "skl2onnx"):
            raise ImportError(f"{name} is not in this image")
sys.meta_path.insert(0, Refuse())
sys.argv = ["process", "serve.json"]
runpy.run_module("core.serving.process", run_name="__main__")
"""


@pytest.fixture(scope="module")
def compiled_store(tmp_path_factory, house_model, house_data):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FIXATIVE_COMPILE", "1")
        return deploy_store(tmp_path_factory.mktemp("docker-onnx"), house_model, house_data)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_a_graph_bundle_holds_neither_the_model_file_nor_scikit_learn(compiled_store, tmp_path):
    graph = dockerbundle.write_bundle(compiled_store, "house:production", tmp_path / "onnx")
    plain = dockerbundle.write_bundle(compiled_store, "house:production", tmp_path / "sk",
                                      engine="sklearn")
    assert not (graph / "model" / "house.joblib").exists()
    assert (graph / "model" / "model.onnx").is_file()
    assert (plain / "model" / "house.joblib").is_file()
    assert not (plain / "model" / "model.onnx").exists()
    names = {line.split("==")[0].lower() for line in
             (graph / "requirements.txt").read_text().splitlines()}
    assert {"onnxruntime", "onnx", "numpy", "pandas", "starlette", "uvicorn"} <= names
    assert not names & {"scikit-learn", "scipy", "joblib", "skl2onnx"}
    plain_names = (plain / "requirements.txt").read_text().lower()
    assert "scikit-learn==" in plain_names and "onnxruntime" not in plain_names
    assert json.loads((graph / "serve.json").read_text())["engine"] == "onnx"
    assert _size(graph / "model") < _size(plain / "model")


def test_engine_onnx_without_a_graph_writes_no_bundle(store, tmp_path):
    with pytest.raises(InvalidArgument, match="--engine onnx: this version has no compiled"):
        dockerbundle.write_bundle(store, "house:production", tmp_path / "x", engine="onnx")
    assert not (tmp_path / "x").exists()


@pytest.mark.process
def test_a_graph_bundle_serves_without_scikit_learn(compiled_store, house_data, tmp_path):
    graph = dockerbundle.write_bundle(compiled_store, "house:production", tmp_path / "onnx")
    port = free_port()
    env = dict(_bundle_env(), PORT=str(port), FIXATIVE_HOST="127.0.0.1")
    env.pop("FIXATIVE_STORE", None)
    proc = subprocess.Popen([sys.executable, "-c", NO_SKLEARN], cwd=graph, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                urllib.request.urlopen(url + "/healthz", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "bundle server did not start"
                time.sleep(0.2)
        rows = house_data.drop(columns="price").sample(50, random_state=3)
        request = urllib.request.Request(
            url + "/predict", data=rows.to_json(orient="records").encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            served = json.loads(response.read())["predict"]
        expected = compiled_store.read_ref("house:production").predict(rows)
        np.testing.assert_allclose(served, expected, rtol=1e-5)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "Serving house@" in output and "is not in this image" not in output
