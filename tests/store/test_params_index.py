"""Recorded parameters in the store: data.txt, the DuckDB index and search by parameter."""

from __future__ import annotations

import pytest
from sklearn.ensemble import RandomForestRegressor

import core
from core.errors import InvalidArgument
from core.store.versionstore import VersionStore


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_data):
    """A board with a 100-tree and a 300-tree forest, and a version without parameters."""
    features = house_data.drop(columns=["price", "zipcode"]).head(300)
    y = house_data["price"].head(300)
    store = VersionStore(tmp_path_factory.mktemp("params") / "board")
    versions = {}
    for trees in (100, 300):
        model = RandomForestRegressor(n_estimators=trees, max_depth=3, random_state=0,
                                      n_jobs=1).fit(features, y)
        bundle = core.bundle(model, features, name="forest", training_data=features,
                             training_code="git:3f2c1ab")
        bundle.meta.lineage["params"]["label"] = str(trees)  # a number written as text
        versions[trees] = store.write(bundle).version
    old = core.bundle(model, features, name="forest")
    old.meta.lineage = None  # as written before parameters were recorded
    versions[0] = store.write(old).version
    return store, versions


def _found(store, param):
    return [v.version for v in store.search(param=param)]


def test_search_by_last_segment_or_full_key_with_typed_values(board):
    store, v = board
    assert _found(store, "n_estimators=300") == [v[300]]
    assert _found(store, "n_estimators=300.0") == [v[300]]
    assert _found(store, " n_estimators = 100 ") == [v[100]]
    assert _found(store, "label=300") == [v[300]]  # the number matches the text "300"
    assert _found(store, "label=0300") == [v[300]]
    assert _found(store, "max_depth=3") == [v[100], v[300]]
    assert _found(store, "bootstrap=true") == [v[100], v[300]]
    assert _found(store, "max_leaf_nodes=None") == [v[100], v[300]]
    assert _found(store, "criterion=squared_error") == [v[100], v[300]]
    assert _found(store, "criterion=SQUARED_ERROR") == []
    assert _found(store, "n_estimators=200") == []
    assert _found(store, "estimators=300") == []  # a segment matches whole, never a part


def test_search_combines_with_other_conditions(board):
    store, v = board
    assert [x.version for x in store.search(text="forest", param="n_estimators=300")] == [v[300]]
    assert store.search(tag="nope", param="n_estimators=300") == []


@pytest.mark.parametrize("hostile", [
    "n_estimators=300' OR '1'='1", "x' OR 1=1; DROP TABLE versions; --=1",
    "n_estimators=1); DELETE FROM params; --", "\"key\"=1", "%=%", "n_estimators=%",
    "=1=1", "n_estimators==300",
])
def test_sql_in_keys_or_values_matches_nothing_and_breaks_nothing(board, hostile):
    store, v = board
    if hostile.startswith("="):
        with pytest.raises(InvalidArgument, match="KEY=VALUE"):
            store.search(param=hostile)
    else:
        assert store.search(param=hostile) == []
    assert _found(store, "n_estimators=300") == [v[300]]
    assert len(store.versions("forest")) == 3


@pytest.mark.parametrize("bad", ["n_estimators", "", "=300", "  =x"])
def test_missing_key_or_equals_sign_says_how(board, bad):
    with pytest.raises(InvalidArgument, match="KEY=VALUE, e.g. n_estimators=300"):
        board[0].search(param=bad)


def test_huge_keys_and_values_are_refused(board):
    with pytest.raises(InvalidArgument, match="at most 1000"):
        board[0].search(param="n_estimators=" + "9" * 100_000)
    with pytest.raises(InvalidArgument, match="at most 300"):
        board[0].search(param="k" * 5000 + "=1")


def test_versions_without_parameters_say_not_recorded(board):
    store, v = board
    assert store.meta("forest", v[0]).lineage is None
    assert store.meta("forest", v[0]).model_summary == "RandomForestRegressor"
    assert store.meta("forest", v[300]).lineage["training_code"] == "git:3f2c1ab"


def test_parameters_are_in_data_txt_for_pins_readers(board):
    import pins

    store, v = board
    meta = pins.board_folder(str(store.path()), allow_pickle_read=True).pin_meta(
        "forest", v[300])
    lineage = meta.user["fixative"]["lineage"]
    assert lineage["params"]["n_estimators"] == 300
    assert lineage["training_data"]["rows"] == 300


def test_reindex_rebuilds_the_parameter_index(board):
    store, v = board
    store.reindex()
    assert _found(store, "n_estimators=300") == [v[300]]


def test_parameters_are_read_without_loading_the_model_file(tmp_path, house_data):
    """The model file is replaced by a pickle that would run a command: showing and
    searching parameters never unpickles it."""
    import os
    import pickle

    marker = tmp_path / "PWNED"

    class Hostile:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    features = house_data.drop(columns=["price", "zipcode"]).head(100)
    model = RandomForestRegressor(n_estimators=5, random_state=0).fit(
        features, house_data["price"].head(100))
    store = VersionStore(tmp_path / "board")
    version = store.write(core.bundle(model, features, name="f")).version
    (tmp_path / "board" / "f" / version / "f.joblib").write_bytes(pickle.dumps(Hostile()))
    store.reindex()
    assert store.meta("f", version).lineage["params"]["n_estimators"] == 5
    assert [v.version for v in store.search(param="n_estimators=5")] == [version]
    assert not marker.exists()
