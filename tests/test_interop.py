"""Interop both ways with the real pins-python and vetiver libraries on one folder board."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pins
import pytest
import vetiver
from sklearn.linear_model import Ridge
from vetiver.utils import serialize_prototype

from core.errors import CorruptData
from core.model.bundle import bundle
from core.store.versions import BoardReport
from core.store.versionstore import VersionStore

# pins-python leaves the handles of the files it hashes and its data.txt to the garbage
# collector when it writes a pin.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <_io.FileIO:pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _quiet_vetiver(caplog):
    caplog.set_level(logging.WARNING)  # vetiver logs a model-card reminder on every write


@pytest.fixture
def store(tmp_path) -> VersionStore:
    return VersionStore(tmp_path / "board")


@pytest.fixture
def board(store):
    return pins.board_folder(store.url, allow_pickle_read=True)


@pytest.fixture(scope="module")
def features(house_data) -> pd.DataFrame:
    return house_data.drop(columns=["price"])


def test_pins_reads_what_fixative_wrote(store, board, house_model, house_data, features):
    first = store.write(bundle(house_model, house_data, name="houses", description="Prices"))
    second = store.write(bundle(house_model, house_data, name="houses"))
    versions = board.pin_versions("houses")
    assert versions["version"].tolist() == [first.version, second.version]
    model = board.pin_read("houses")
    np.testing.assert_array_equal(model.predict(features), house_model.predict(features))
    meta = board.pin_meta("houses", first.version)
    assert (meta.type, meta.file, meta.file_size, meta.description) == \
        ("joblib", "houses.joblib", first.size, "Prices")
    assert meta.title == "houses: a pinned Pipeline object"
    assert meta.version.version == first.version
    assert board.pin_read("houses", version=first.version).__class__ is type(house_model)
    assert store.verify_report() == BoardReport(counts={"versions": 2})  # data.txt hashed


def test_vetiver_loads_what_fixative_wrote(store, board, house_model, house_data, features):
    info = store.write(bundle(house_model, house_data, name="houses", metrics={"rmse": 1.0}))
    v = vetiver.VetiverModel.from_pin(board, "houses")
    assert v.metadata.version == info.version
    assert "scikit-learn" in v.metadata.required_pkgs
    assert list(v.prototype.model_fields) == list(features.columns)
    example = json.loads(serialize_prototype(v.prototype))
    assert example == store.meta("houses").prototype.example_record()
    assert example["zipcode"] in set(features.zipcode) and isinstance(example["grade"], int)
    np.testing.assert_array_equal(v.model.predict(features), house_model.predict(features))
    assert v.metadata.user["metrics"] == {"rmse": 1.0}


def test_fixative_lists_and_loads_a_vetiver_pin(store, board, house_model, features,
                                                 capsys):
    vetiver.vetiver_pin_write(board, vetiver.VetiverModel(house_model, "vet-houses",
                                                          prototype_data=features))
    (info,) = store.versions("vet-houses")
    assert info.source == "pins" and info.model_class == "Pipeline"
    assert store.list_models()[0].name == "vet-houses"
    meta = store.meta("vet-houses")  # from data.txt alone, no unpickling
    assert meta.prototype.names == list(features.columns)
    loaded = store.read("vet-houses")
    assert loaded.version == info.version and loaded.sample is None
    assert loaded.meta.task == "regression" and loaded.meta.model_class == "Pipeline"
    kinds = {c.name: c.kind for c in loaded.prototype.columns}
    assert kinds == {"bedrooms": "int", "bathrooms": "float", "sqft_living": "int",
                     "grade": "int", "yr_built": "int", "zipcode": "category"}
    np.testing.assert_array_equal(loaded.predict(features.head(20)),
                                  house_model.predict(features.head(20)))
    _, warnings = loaded.prototype.validate(features.head(20))
    assert warnings == []  # one example row says nothing about unseen levels or ranges
    report = store.verify_report()  # vetiver keeps no hash of data.txt: a note, not a problem
    assert report.problems == [] and report.notes == [
        f"1 version(s) have no recorded data.txt hash (pinned with pins or vetiver, or written "
        f"by an older Fixative), so their data.txt was not checked: vet-houses/{info.version}."]
    assert store.reindex_report().problems == []
    # vetiver records package names without versions: show says so, not "scikit-learn="
    from core.cli.main import main

    assert main(["show", "vet-houses", "--store", str(store.url)]) == 0
    shown = capsys.readouterr().out
    assert "scikit-learn (version not recorded)" in shown and "scikit-learn=," not in shown


def test_vetiver_array_model_keeps_its_unnamed_columns(store, board):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    model = Ridge().fit(X, X.sum(axis=1))
    vetiver.vetiver_pin_write(board, vetiver.VetiverModel(model, "ridge", prototype_data=X))
    loaded = store.read("ridge")
    assert loaded.prototype.names == ["0", "1", "2"] and not loaded.prototype.named
    np.testing.assert_allclose(loaded.predict(X[:5]), model.predict(X[:5]))


def test_one_pin_written_by_both(store, board, house_model, house_data, features):
    ours = store.write(bundle(house_model, house_data, name="houses"))
    assert len(store.versions("houses")) == 1
    vetiver.vetiver_pin_write(board, vetiver.VetiverModel(house_model, "houses",
                                                          prototype_data=features))
    listed = store.versions("houses")
    assert sorted(v.source for v in listed) == ["fixative", "pins"]
    # read from the new folder, it is exactly what the index says of it
    assert listed == VersionStore(store.url).versions("houses")
    assert ours.version in [v.version for v in listed]
    # Same order as pins (ids sorted as text), so both agree on the latest version.
    assert [v.version for v in listed] == board.pin_versions("houses")["version"].tolist()
    assert store.read("houses").version == listed[-1].version == \
        board.pin_meta("houses").version.version


def test_a_corrupted_vetiver_pin_is_refused(store, board, house_model, features):
    vetiver.vetiver_pin_write(board, vetiver.VetiverModel(house_model, "vet-houses",
                                                          prototype_data=features))
    (info,) = store.versions("vet-houses")
    path = store.path("vet-houses", info.version, "vet-houses.joblib")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 3] ^= 0x01
    open(path, "wb").write(bytes(data))
    with pytest.raises(CorruptData, match="vet-houses.joblib is corrupt: its xxh64 is"):
        store.read("vet-houses")
