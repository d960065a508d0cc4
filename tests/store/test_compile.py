"""Compiling versions to ONNX: at write time, on demand, hashed, and never failing a write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from core import settings
from core.cli.main import main as cli
from core.errors import CorruptData, InvalidArgument, NotFound
from core.model.bundle import bundle
from core.serving.engine import OnnxEngine, wants_graph
from core.store.compile import verified
from core.store.paths import COMPILED_FILE, COMPILED_HASH_FILE, ONNX_FILE
from core.store.versionstore import VersionStore


class Doubler(BaseEstimator, TransformerMixin):
    """A transformer skl2onnx has no converter for."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float) * 2


@pytest.fixture
def compiling(monkeypatch):
    monkeypatch.setenv(settings.COMPILE_ENV, "1")


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data, churn_model, churn_data):
    """house compiled when written; churn written plain and compiled later."""
    s = VersionStore(str(tmp_path_factory.mktemp("compile") / "board"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(settings.COMPILE_ENV, "1")
        s.write(bundle(house_model, house_data.drop(columns=["price"]), name="house"))
    s.write(bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn"))
    return s


def _folder(store, name):
    version = store.versions(name)[-1].version
    return store.path(name, version), version


def test_a_write_compiles_and_records_the_differences(board, house_model, house_data):
    report = board.compiled("house")
    assert report["available"] and report["reason"] is None
    assert report["rows"] == len(house_data)
    assert report["predict"]["max_rel"] <= 1e-5 and report["predict"]["max_abs"] >= 0
    assert report["labels_identical"] is None and report["proba"] is None
    assert verified(report)
    # the graph answers as the model does on fresh rows
    _, version = _folder(board, "house")
    graph_bundle, report, graph = board.read_graph("house", version)
    feats = house_data.drop(columns=["price"]).head(50)
    frame, _ = graph_bundle.prototype.validate(feats)
    got = OnnxEngine(graph, report)("predict", frame)
    np.testing.assert_allclose(got, house_model.predict(feats), rtol=1e-5)


def test_the_graph_is_hashed_with_the_versions_files(board):
    folder, version = _folder(board, "house")
    meta = json.loads(Path(folder, "fixative.json").read_text())
    files = meta["fixative"]["files"]
    assert {ONNX_FILE, COMPILED_FILE} <= set(files)
    assert board.verify() == []
    with open(f"{folder}/{ONNX_FILE}", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    try:
        problems = board.verify()
        assert any(ONNX_FILE in p and "corrupt" in p for p in problems)
        with pytest.raises(CorruptData, match="model.onnx is corrupt"):
            board.read_graph("house", version)
    finally:
        with open(f"{folder}/{ONNX_FILE}", "r+b") as f:
            f.seek(100)
            f.write(byte)
    assert board.verify() == []


def test_a_classifier_compiled_later_records_labels_and_probabilities(board):
    assert board.compiled("churn") is None
    with pytest.raises(NotFound, match="never compiled"):
        board.read_graph("churn", _folder(board, "churn")[1])
    report = board.compile("churn")
    assert report["labels_identical"] is True
    assert report["proba"]["max_rel"] <= 1e-5
    assert board.compiled("churn") == report
    folder, version = _folder(board, "churn")
    meta = json.loads(Path(folder, "fixative.json").read_text())
    assert COMPILED_FILE not in meta["fixative"]["files"]  # the version's files never change
    assert board.verify() == []
    # the report compiled later is checked against its own recorded hash
    raw = Path(folder, COMPILED_FILE).read_text()
    Path(folder, COMPILED_FILE).write_text(raw.replace('"labels_identical": true',
                                                       '"labels_identical": false'))
    try:
        with pytest.raises(CorruptData, match="compiled.json is corrupt"):
            board.compiled("churn")
        assert any(COMPILED_FILE in p for p in board.verify())
    finally:
        Path(folder, COMPILED_FILE).write_text(raw)
    Path(folder, COMPILED_HASH_FILE).write_text("not a hash\n")
    try:
        with pytest.raises(CorruptData, match="unreadable"):
            board.compiled("churn")
    finally:
        board.compile("churn")
    assert board.verify() == []


def test_compiling_again_keeps_what_the_write_recorded(board):
    before = board.compiled("house")
    assert board.compile("house") == before


def test_pins_and_vetiver_still_read_a_compiled_version(board, house_data):
    pins = pytest.importorskip("pins")
    vetiver = pytest.importorskip("vetiver")
    b = pins.board_folder(str(board.url), allow_pickle_read=True)
    model = b.pin_read("house")
    feats = house_data.drop(columns=["price"]).head(5)
    assert len(model.predict(feats)) == 5
    assert vetiver.VetiverModel.from_pin(b, "house").model is not None


def test_an_unconvertible_step_is_named_and_the_write_succeeds(tmp_path, compiling):
    X = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0) % 7})
    model = Pipeline([("double", Doubler()), ("lm", LinearRegression())]).fit(X, X["a"] * 3)
    s = VersionStore(str(tmp_path / "b"))
    info = s.write(bundle(model, X, name="odd"))
    report = s.compiled("odd")
    assert report["available"] is False
    assert "Doubler" in report["reason"] and "'double'" in report["reason"]
    assert not wants_graph("auto", report)
    with pytest.raises(InvalidArgument, match="--engine onnx: .*Doubler"):
        wants_graph("onnx", report)
    trusted = ["test_compile.Doubler"]
    assert s.read("odd", info.version, trusted=trusted).predict(X.head(2)).shape == (2,)
    assert s.verify() == []


def test_a_text_column_with_nulls_is_named(tmp_path, compiling):
    X = pd.DataFrame({"n": np.arange(30.0), "t": ["a", None, "b"] * 10})
    model = Pipeline([("lm", LinearRegression())])
    model.fit(X[["n"]], X["n"])
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer([("t", Pipeline([("imp", SimpleImputer(strategy="constant",
                                                                   fill_value="z")),
                                             ("oh", OneHotEncoder())]), ["t"]),
                             ("n", "passthrough", ["n"])])
    model = Pipeline([("pre", pre), ("lm", LinearRegression())]).fit(X, X["n"])
    s = VersionStore(str(tmp_path / "b"))
    s.write(bundle(model, X, name="nulls"))
    report = s.compiled("nulls")
    assert report["available"] is False and "'t'" in report["reason"]
    assert "nulls" in report["reason"]


def test_numeric_nulls_and_integers_compile(tmp_path, compiling):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"i": rng.integers(0, 5, 300), "f": rng.normal(size=300),
                      "s": rng.choice(["x", "y", "z"], 300)})
    X.loc[::7, "f"] = np.nan
    y = (X["i"] + X["s"].eq("x")) % 2
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    pre = ColumnTransformer([("s", OneHotEncoder(handle_unknown="ignore"), ["s"]),
                             ("f", SimpleImputer(), ["f"]), ("i", "passthrough", ["i"])])
    model = Pipeline([("pre", pre), ("rf", RandomForestClassifier(10, random_state=0))])
    model.fit(X, y)
    s = VersionStore(str(tmp_path / "b"))
    s.write(bundle(model, X, name="mixed"))
    report = s.compiled("mixed")
    assert report["available"], report["reason"]
    assert report["labels_identical"] is True and verified(report)


def test_no_sample_means_no_graph_and_says_why(tmp_path, house_model):
    s = VersionStore(str(tmp_path / "b"))
    s.write(bundle(house_model, name="bare"))
    report = s.compile("bare")
    assert report["available"] is False and "no stored sample" in report["reason"]


def test_the_tolerance_setting_decides_what_is_verified(board, monkeypatch):
    report = board.compiled("house")
    assert verified(report)
    monkeypatch.setenv(settings.ONNX_TOLERANCE_ENV, "0")
    assert not verified(report) or report["predict"]["max_rel"] == 0
    for bad in ("-1", "nan", "inf", "lots"):
        monkeypatch.setenv(settings.ONNX_TOLERANCE_ENV, bad)
        with pytest.raises(InvalidArgument, match="FIXATIVE_ONNX_TOLERANCE must be a number"):
            verified(report)


def test_the_compile_command(board, capsys):
    assert cli(["compile", "churn", "--store", str(board.url)]) == 0
    out = capsys.readouterr().out
    assert "verified on 800 sample rows" in out and "labels identical" in out
    assert cli(["compile", "churn", "--store", str(board.url), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["labels_identical"] is True
    assert cli(["compile", "ghost", "--store", str(board.url)]) == 1
    assert "error:" in capsys.readouterr().err
    assert cli(["compile", "../../etc@x", "--store", str(board.url)]) == 1


def test_the_card_says_which_engine_serves_and_why(board, tmp_path, house_model, house_data):
    from core.cards.card import card_data, render_html

    card = card_data(board, "house")
    assert card.engine.startswith("ONNX graph (onnxruntime); compiled graph verified on 800 ")
    assert "Serving engine" in render_html(card)
    plain = VersionStore(str(tmp_path / "b"))
    plain.write(bundle(house_model, house_data.drop(columns=["price"]), name="plain"))
    assert card_data(plain, "plain").engine.startswith("scikit-learn; compiled graph not "
                                                       "compiled: run 'python -m core compile")


@pytest.mark.parametrize(("setting", "library", "uploaded"), [
    (None, False, True),      # unset: uploads compile, a library write costs what storing costs
    ("1", True, True), ("on", True, True),
    ("0", False, False), ("off", False, False),
])
def test_which_writes_compile(tmp_path, monkeypatch, house_model, house_data, setting, library,
                              uploaded):
    import io

    import joblib

    from core.store.upload import upload

    if setting is None:
        monkeypatch.delenv(settings.COMPILE_ENV, raising=False)
    else:
        monkeypatch.setenv(settings.COMPILE_ENV, setting)
    store = VersionStore(str(tmp_path / "board"))
    features = house_data.drop(columns=["price"])
    store.write(bundle(house_model, features, name="lib"))
    assert (store.compiled("lib") is not None) is library
    store.write(bundle(house_model, features, name="asked"), compile=True)
    assert store.compiled("asked") is not None  # asked for, whatever the setting
    raw = io.BytesIO()
    joblib.dump(house_model, raw)
    upload(store, raw.getvalue(), "house.joblib", name="up",
           sample_data=features.head(50).to_csv(index=False).encode(), sample_filename="s.csv")
    assert (store.compiled("up") is not None) is uploaded
