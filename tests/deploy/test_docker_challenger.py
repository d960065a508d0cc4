"""Docker bundles with a challenger (``--shadow`` / ``--canary``): both version folders,
settings, requirements, README and manifests; hostile challengers refused with nothing
written; the bundle's entry point refusing edited challenger settings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from challenger_helpers import Faulty

from core.cli.main import main
from core.deploy import docker as dockerbundle
from core.deploy.pair import merge_requirements
from core.errors import InvalidArgument, InvalidName, NotFound, UnsafeModel
from core.model import examples
from core.model.bundle import bundle
from core.serving.netcheck import free_port
from core.store.versionstore import VersionStore


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data):
    board = VersionStore(tmp_path_factory.mktemp("pair") / "board")
    x = house_data.drop(columns="price")
    v1 = board.write(bundle(house_model, x, name="house")).version
    board.set_alias("house", "production", v1)
    v2 = board.write(bundle(examples.house_model(house_data, n_estimators=4), x,
                            name="house")).version
    faulty = Faulty(list(x.columns))
    v3 = board.write(bundle(faulty, x, name="house")).version  # a class off the allowlist
    board.write(bundle(examples.churn_model(examples.churn(200, seed=1)),
                       examples.churn(200, seed=1).drop(columns="churned"), name="churn"))
    return board, {"v1": v1, "v2": v2, "faulty": v3}


@pytest.fixture(scope="module")
def shadow(store, tmp_path_factory) -> Path:
    board, v = store
    return dockerbundle.write_bundle(board, "house:production",
                                     tmp_path_factory.mktemp("b") / "shadow",
                                     shadow=f"house@{v['v2']}")


def test_a_shadow_bundle_holds_both_versions_and_names_the_pair(shadow, store):
    _, v = store
    assert (shadow / "model" / "house.joblib").is_file()
    assert (shadow / "challenger" / "house.joblib").is_file()
    assert json.loads((shadow / "challenger" / "fixative.json").read_text())[
        "fixative"]["version"] == v["v2"]
    settings = json.loads((shadow / "serve.json").read_text())
    assert settings["version"] == v["v1"]
    assert settings["challenger"] == {"name": "house", "version": v["v2"], "mode": "shadow",
                                      "share": None, "model_dir": "challenger",
                                      "engine": "sklearn"}
    readme = (shadow / "README.md").read_text()
    assert "## Champion and challenger (shadow)" in readme
    assert f"challenger house@{v['v2']} scores the same request" in readme
    assert "serving_role" in readme and "`challenger/`" in readme
    assert f"challenger house@{v['v2']} (shadow)" in (shadow / "Dockerfile").read_text()
    names = {line.split("==")[0].lower()
             for line in (shadow / "requirements.txt").read_text().splitlines()}
    assert "scikit-learn" in names


def test_the_bundle_folders_load_like_the_store(shadow, store, house_data):
    from core.serving.process import read_version_dir

    board, v = store
    rows = house_data.drop(columns="price").head(5)
    for folder, version in (("model", v["v1"]), ("challenger", v["v2"])):
        loaded = read_version_dir(shadow / folder)
        pd.testing.assert_series_equal(
            pd.Series(loaded.predict(rows)),
            pd.Series(board.read("house", version).predict(rows)))


def test_canary_bundle_with_k8s_from_the_cli(store, tmp_path, capsys):
    board, v = store
    out = tmp_path / "canary"
    assert main(["docker", "house:production", str(out), "--canary", f"house@{v['v2']}:10%",
                 "--k8s", "--no-lock", "--store", str(board.url)]) == 0
    printed = capsys.readouterr().out
    assert f"challenger house@{v['v2']} (canary 10%)" in printed
    settings = json.loads((out / "serve.json").read_text())
    assert settings["challenger"]["mode"] == "canary"
    assert settings["challenger"]["share"] == pytest.approx(0.1)
    deployment = (out / "k8s" / "deployment.yaml").read_text()
    doc = yaml.safe_load(deployment)
    label = f"house@{v['v2']} (canary 10%)"
    assert doc["metadata"]["annotations"]["fixative.dev/challenger"] == label
    assert doc["spec"]["template"]["metadata"]["annotations"][
        "fixative.dev/challenger"] == label
    assert f"with the challenger {label} in every pod" in deployment
    assert "answers 10% of the prediction" in (out / "README.md").read_text()
    assert "s3fs" in (out / "requirements.txt").read_text()


def test_a_zip_holds_the_challenger_too(store):
    board, v = store
    import io
    import zipfile

    name, data = dockerbundle.bundle_zip(board, "house:production",
                                         canary=f"house@{v['v2']}:25%")
    files = zipfile.ZipFile(io.BytesIO(data)).namelist()
    folder = name[:-4]
    assert f"{folder}/challenger/house.joblib" in files
    assert f"{folder}/model/house.joblib" in files


# -- hostile challengers: refused, nothing written -------------------------------------------

@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"canary": "house@{v2}:0%"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": "house@{v2}:100%"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": "house@{v2}:-5%"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": "house@{v2}:nan"}, InvalidArgument, "is not a number"),
    ({"canary": "house@{v2}:1e309"}, InvalidArgument, "is not a number"),
    ({"canary": "house@{v2}:ten"}, InvalidArgument, "is not a number"),
    ({"canary": "house@{v2}"}, InvalidArgument, "REF:SHARE"),
    ({"canary": ":10%"}, InvalidArgument, "REF:SHARE"),
    ({"shadow": "   "}, InvalidArgument, "--shadow needs the challenger"),
    ({"shadow": "house@{v2}", "canary": "house@{v2}:5%"}, InvalidArgument, "not both"),
    ({"shadow": "house:production"}, InvalidArgument, "is the champion itself"),
    ({"shadow": "../../etc/passwd"}, InvalidName, "model name '../../etc/passwd' is not "
                                                      "allowed: it contains '/'"),
    ({"shadow": "house@../../{v2}"}, InvalidName, "version '../../.*' is not allowed"),
    ({"shadow": "nosuch"}, NotFound, "nosuch"),
    ({"shadow": "churn"}, InvalidArgument, "a challenger needs the same prototype|same task"),
    ({"shadow": "house@{faulty}"}, UnsafeModel, "no bundle is written until each name is "
                                                "trusted"),
    ({"canary": "house@{faulty}:10%"}, UnsafeModel, "challenger_helpers.Faulty"),
])
def test_bad_challengers_write_nothing(store, tmp_path, kwargs, error, message):
    board, v = store
    kwargs = {k: text.format(**v) for k, text in kwargs.items()}
    with pytest.raises(error, match=message):
        dockerbundle.write_bundle(board, "house:production", tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_an_untrusted_challenger_is_bundled_once_trusted(store, tmp_path):
    board, v = store
    out = dockerbundle.write_bundle(board, "house:production", tmp_path / "t",
                                    shadow=f"house@{v['faulty']}",
                                    trusted=["challenger_helpers.Faulty"])
    assert json.loads((out / "serve.json").read_text())["trusted"] == [
        "challenger_helpers.Faulty"]
    assert (out / "challenger" / "house.joblib").is_file()


def test_the_cli_refuses_a_bad_share_and_writes_nothing(store, tmp_path, capsys):
    board, v = store
    code = main(["docker", "house:production", str(tmp_path / "x"), "--canary",
                 f"house@{v['v2']}:150%", "--no-lock", "--store", str(board.url)])
    assert code != 0
    assert "outside 0%-100%" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_requirements_that_pin_one_package_twice_are_refused():
    merged = merge_requirements(["numpy==2.0.0", "pandas==2.2.0"],
                                ["numpy==2.0.0", "scikit_learn==1.5.0"], who="m@v2")
    assert merged == ["numpy==2.0.0", "pandas==2.2.0", "scikit_learn==1.5.0"]
    with pytest.raises(InvalidArgument, match=r"different versions of scikit-learn "
                                              r"\(scikit-learn==1.5.0 and scikit_learn==1.6.1\)"):
        merge_requirements(["scikit-learn==1.5.0"], ["scikit_learn==1.6.1"], who="m@v2")


# -- compiled graphs -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compiled(tmp_path_factory, house_model, house_data):
    board = VersionStore(tmp_path_factory.mktemp("pair-onnx") / "board")
    x = house_data.drop(columns="price")
    v1 = board.write(bundle(house_model, x, name="house"), compile=True).version
    v2 = board.write(bundle(examples.house_model(house_data, n_estimators=4), x,
                            name="house"), compile=True).version
    v3 = board.write(bundle(examples.house_model(house_data, n_estimators=3), x,
                            name="house"), compile=False).version
    return board, v1, v2, v3


def _names(folder: Path) -> set[str]:
    return {line.split("==")[0].lower()
            for line in (folder / "requirements.txt").read_text().splitlines()}


def test_two_graphs_need_no_pickle_and_no_scikit_learn(compiled, tmp_path):
    board, v1, v2, _ = compiled
    out = dockerbundle.write_bundle(board, f"house@{v1}", tmp_path / "g", shadow=f"house@{v2}")
    for folder in ("model", "challenger"):
        assert (out / folder / "model.onnx").is_file()
        assert not (out / folder / "house.joblib").exists()
    assert not _names(out) & {"scikit-learn", "scipy", "joblib", "skl2onnx"}
    assert "onnxruntime" in _names(out)
    spec = json.loads((out / "serve.json").read_text())
    assert spec["engine"] == "onnx" and spec["challenger"]["engine"] == "onnx"
    assert "never unpickled" in (out / "README.md").read_text()


def test_a_challenger_without_a_graph_brings_scikit_learn(compiled, tmp_path):
    board, v1, _, v3 = compiled
    out = dockerbundle.write_bundle(board, f"house@{v1}", tmp_path / "m",
                                    canary=f"house@{v3}:50%")
    assert (out / "model" / "model.onnx").is_file()
    assert (out / "challenger" / "house.joblib").is_file()
    assert {"scikit-learn", "onnxruntime"} <= _names(out)
    assert json.loads((out / "serve.json").read_text())["challenger"]["engine"] == "sklearn"
    with pytest.raises(InvalidArgument, match="--engine onnx"):
        dockerbundle.write_bundle(board, f"house@{v1}", tmp_path / "n", engine="onnx",
                                  canary=f"house@{v3}:50%")
    assert not (tmp_path / "n").exists()


# -- the entry point with edited challenger settings -----------------------------------------

@pytest.mark.parametrize(("edit", "message"), [
    ({"model_dir": "../model"}, "must be a folder inside the bundle"),
    ({"model_dir": "/etc"}, "must be a folder inside the bundle"),
    ({"model_dir": ".."}, "must be a folder inside the bundle"),
    ({"model_dir": 7}, "must be a folder inside the bundle"),
    ({"mode": "sideways"}, "is not one of shadow, canary"),
    ({"mode": "canary", "share": 150}, "outside 0%-100%"),
    ({"mode": "canary", "share": None}, "is not a number"),
    ({"version": None}, "must be an object with name, version"),
    ({"model_dir": "nosuch"}, "holds no model version"),
])
def test_entry_point_refuses_edited_challenger_settings(shadow, tmp_path, monkeypatch, capsys,
                                                        edit, message):
    import shutil

    from core.serving.process import main as entry

    for key in ("PORT", "FIXATIVE_WORKERS", "FIXATIVE_HOST", "FIXATIVE_STORE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FIXATIVE_HEARTBEAT_SECONDS", "0")
    copy = tmp_path / "b"
    shutil.copytree(shadow, copy, ignore=shutil.ignore_patterns("core"))
    settings = json.loads((copy / "serve.json").read_text())
    settings["challenger"] = {**settings["challenger"], **edit}
    # refused before anything listens; were it not, on a free loopback port
    settings["port"], settings["host"] = free_port(), "127.0.0.1"
    (copy / "serve.json").write_text(json.dumps(settings))
    assert entry([str(copy / "serve.json")]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("folder", ["../model", "/etc", "model/../..", ".hidden", "..\\x"])
def test_entry_point_refuses_a_champion_folder_outside_the_bundle(shadow, tmp_path,
                                                                  monkeypatch, capsys, folder):
    import shutil

    from core.serving.process import main as entry

    for key in ("PORT", "FIXATIVE_WORKERS", "FIXATIVE_HOST", "FIXATIVE_STORE"):
        monkeypatch.delenv(key, raising=False)
    copy = tmp_path / "b"
    shutil.copytree(shadow, copy, ignore=shutil.ignore_patterns("core"))
    settings = json.loads((copy / "serve.json").read_text())
    settings["model_dir"] = folder
    settings["port"], settings["host"] = free_port(), "127.0.0.1"
    (copy / "serve.json").write_text(json.dumps(settings))
    assert entry([str(copy / "serve.json")]) == 1
    assert "must be a folder inside the bundle" in capsys.readouterr().err


def test_the_lock_covers_both_versions(compiled, tmp_path):
    from core.deploy import lock as locking

    board, v1, _, v3 = compiled
    out = dockerbundle.write_bundle(board, f"house@{v1}", tmp_path / "locked", lock=True,
                                    shadow=f"house@{v3}")
    locked = {line.split("==")[0].strip().lower()
              for line in (out / locking.LOCK_FILE).read_text().splitlines()
              if "==" in line and not line.startswith((" ", "#"))}
    # the champion's graph needs onnxruntime, the challenger's model file scikit-learn
    assert {"onnxruntime", "scikit-learn"} <= locked
    for line in (out / "requirements.txt").read_text().splitlines():
        assert line.split("==")[0].lower() in locked
