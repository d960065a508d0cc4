"""VersionStore on real folders (and the same tests on a moto S3 server), real DuckDB."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import store_fixtures
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from store_fixtures import board_versions

import core.store.files as files_module
import core.store.staging as staging_module
from core.errors import (
    Conflict,
    CorruptData,
    InvalidArgument,
    InvalidName,
    NotFound,
    PayloadTooLarge,
    UnsafeModel,
)
from core.model.bundle import ModelBundle, bundle
from core.store.versionstore import VersionStore

# The fixtures this module shares with test_store_s3.py.
s3_server, s3_env, s3_store, any_store = (store_fixtures.s3_server, store_fixtures.s3_env,
                                          store_fixtures.s3_store, store_fixtures.any_store)
VERSION_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{5}")


# -- models of every kind the store must carry ----------------------------------------------

@pytest.fixture(scope="module")
def kinds(house_data, house_model, churn_data, churn_model
          ) -> dict[str, tuple[ModelBundle, object]]:
    """name -> (bundle, input to predict on) for the five kinds of model."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 5))
    ridge = Ridge().fit(X, X @ np.arange(5.0))

    flowers = pd.DataFrame({"length": rng.normal(5, 1, 300), "width": rng.normal(3, .5, 300)})
    species = np.where(flowers.length > 5.5, "virginica",
                       np.where(flowers.width > 3, "setosa", "versicolor"))
    multi = LogisticRegression(max_iter=500).fit(flowers, species)

    homes = pd.DataFrame({
        "area": rng.uniform(30, 200, 400),
        "city": pd.Categorical(rng.choice(["oslo", "bergen", "tromso"], 400)),
    })
    hgb = HistGradientBoostingRegressor(categorical_features="from_dtype", max_iter=30)
    hgb.fit(homes, homes.area * 10 + homes.city.cat.codes * 100)

    houses = house_data.drop(columns=["price"])
    churn = churn_data.drop(columns=["churned"])
    return {
        "pipeline": (bundle(house_model, house_data, name="houses", metrics={"rmse": 41000.5},
                            tags=["baseline"], description="House prices"), houses.head(50)),
        "array": (bundle(ridge, name="ridge"), X[:50]),
        "binary": (bundle(churn_model, churn_data, name="churn"), churn.head(50)),
        "multiclass": (bundle(multi, flowers, name="flowers"), flowers.head(50)),
        "hgb": (bundle(hgb, homes, name="homes"), homes.head(50)),
    }


@pytest.fixture
def store(tmp_path) -> VersionStore:
    return VersionStore(tmp_path / "board")


@pytest.fixture(scope="module")
def small(house_data, house_model) -> ModelBundle:
    return bundle(house_model, house_data.head(100), name="houses", metrics={"rmse": 3.0})


# -- round trip -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["pipeline", "array", "binary", "multiclass", "hgb"])
def test_round_trip_keeps_predictions_and_metadata(any_store, kinds, kind):
    original, data = kinds[kind]
    info = any_store.write(original)
    assert VERSION_ID.fullmatch(info.version) and original.version == info.version
    loaded = any_store.read(original.name)
    assert loaded.version == info.version
    np.testing.assert_array_equal(loaded.predict(data), original.predict(data))
    if original.meta.has_proba:
        np.testing.assert_allclose(loaded.predict_proba(data), original.predict_proba(data))
    assert loaded.meta.to_dict() == original.meta.to_dict()
    if original.sample is None:
        assert loaded.sample is None and any_store.sample(original.name) is None
    else:
        pd.testing.assert_frame_equal(loaded.sample, original.sample)
    listed = any_store.versions(original.name)
    assert [v.version for v in listed] == [info.version]
    assert listed[0].hash == info.hash and listed[0].size == info.size > 0
    assert listed[0].task == original.meta.task
    assert any_store.meta(original.name, info.version).prototype == original.prototype


def test_listing_summarises_models(store, kinds):
    for kind in ("pipeline", "binary"):
        store.write(kinds[kind][0])
    second = store.write(kinds["pipeline"][0])
    models = {m.name: m for m in store.list_models()}
    assert set(models) == {"houses", "churn"}
    houses = models["houses"]
    assert (houses.latest, houses.n_versions, houses.task, houses.model_class) == \
        (second.version, 2, "regression", "Pipeline")
    assert houses.updated == second.created
    assert models["churn"].task == "binary"
    assert json.loads(json.dumps(houses.to_dict()))["latest"] == second.version


def test_same_second_writes_get_distinct_ids_in_time_order(any_store, small):
    infos = [any_store.write(small) for _ in range(6)]  # identical bytes, well within a second
    ids = [i.version for i in infos]
    assert len(set(ids)) == 6
    assert ids == sorted(ids)
    assert [v.version for v in any_store.versions("houses")] == ids
    assert [i.created for i in infos] == sorted(i.created for i in infos)
    assert all(VERSION_ID.fullmatch(v) for v in ids)
    assert any_store.read("houses").version == ids[-1]


def test_read_by_version_alias_and_reference(store, small):
    first, second = store.write(small), store.write(small)
    store.set_alias("houses", "production", first.version)
    assert store.read("houses", version=first.version).version == first.version
    assert store.read("houses", alias="production").version == first.version
    assert store.read("houses").version == second.version
    assert store.read_ref("houses:production").version == first.version
    assert store.read_ref(f"houses@{second.version}").version == second.version
    assert store.resolve("houses") == ("houses", second.version)
    assert store.resolve("houses:production") == ("houses", first.version)
    with pytest.raises(InvalidArgument, match="not both"):
        store.read("houses", version=first.version, alias="production")


def test_unknown_names_are_reported_with_what_exists(store, small):
    with pytest.raises(NotFound, match="the store is empty"):
        store.read("houses")
    info = store.write(small)
    store.set_alias("houses", "staging", info.version)
    store.set_alias("houses", "production", info.version)
    with pytest.raises(NotFound, match=r"No model 'housez'.*Did you mean 'houses'\?"):
        store.versions("housez")
    with pytest.raises(NotFound, match=r"No version '20200101T000000Z-00000' of model 'houses'"
                                        rf".*latest is '{info.version}'"):
        store.read("houses", version="20200101T000000Z-00000")
    with pytest.raises(NotFound, match="No alias 'prod' for model 'houses'; aliases: "
                                       "production, staging"):
        store.read("houses", alias="prod")
    with pytest.raises(NotFound, match="No model 'nope'"):
        store.read_ref("nope:production")


# -- names ------------------------------------------------------------------------------------

HOSTILE = ["../x", "a/b", "/etc/passwd", "", ".", "..", "a\x00b", "line\nbreak", ".hidden",
           "x" * 129, ".fixative", "with space", "naïve", "a\\b", "C:evil", "-rf", "nul\x7f"]


@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_names_are_refused_before_touching_the_board(tmp_path, store, small, bad):
    before = sorted(p.name for p in tmp_path.iterdir())
    hostile = ModelBundle(small.model, dataclasses.replace(small.meta, name=bad), small.sample)
    message = r"(letters, digits, '-', '_' and '\.'|empty|at most 128|reserved)"
    with pytest.raises(InvalidName, match=message):
        store.write(hostile)
    for call in (lambda: store.read(bad), lambda: store.versions(bad),
                 lambda: store.delete("houses", bad), lambda: store.set_alias("houses", bad, "v"),
                 lambda: store.add_record(bad, "houses", {}),
                 lambda: store.read("houses", version=bad)):
        with pytest.raises(InvalidName):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "board" / "houses").exists()


def test_name_message_says_what_is_allowed(store):
    with pytest.raises(InvalidName, match=r"The model name '\.\./x' is not allowed: it contains "
                                          r"'/'\. Use letters, digits, '-', '_' and '\.' only"):
        store.versions("../x")
    with pytest.raises(InvalidName, match="The alias is empty"):
        store.aliases("houses") or store.set_alias("houses", "", "v")
    with pytest.raises(InvalidName, match="must be a string"):
        store.versions(None)  # type: ignore[arg-type]


# -- aliases ----------------------------------------------------------------------------------

def test_alias_moves_are_kept_with_who_and_when(any_store, small):
    v1, v2 = any_store.write(small), any_store.write(small)
    set_1 = any_store.set_alias("houses", "production", v1.version, user="ana")
    moved = any_store.set_alias("houses", "production", v2.version, user="ben")
    assert any_store.set_alias("houses", "production", v2.version).id == moved.id  # no-op
    assert any_store.aliases("houses") == {"production": v2.version}
    history = any_store.alias_history("houses")
    assert [(e.alias, e.from_version, e.to_version, e.user) for e in history] == [
        ("production", None, v1.version, "ana"), ("production", v1.version, v2.version, "ben")]
    assert history[0].at < history[1].at
    assert any_store.alias_at("houses", "production", history[0].at) == v1.version
    assert any_store.alias_at("houses", "production", history[1].at) == v2.version
    assert any_store.alias_at("houses", "production", history[0].at - timedelta(days=3)) is None
    assert set_1.to_dict()["at"].endswith("Z")
    listed = {v.version: v.aliases for v in any_store.versions("houses")}
    assert listed == {v1.version: [], v2.version: ["production"]}
    assert any_store.list_models()[0].aliases == {"production": v2.version}
    removed = any_store.remove_alias("houses", "production", user="cy")
    assert (removed.from_version, removed.to_version) == (v2.version, None)
    assert any_store.aliases("houses") == {}
    with pytest.raises(NotFound, match="No alias 'production'"):
        any_store.read("houses", alias="production")


def test_alias_to_unknown_version_is_refused(store, small):
    store.write(small)
    with pytest.raises(NotFound, match="No version '20200101T000000Z-00000'"):
        store.set_alias("houses", "production", "20200101T000000Z-00000")
    assert store.alias_history("houses") == []


# -- delete and prune -------------------------------------------------------------------------

def test_delete_is_refused_while_an_alias_points_at_the_version(any_store, small):
    v1, v2 = any_store.write(small), any_store.write(small)
    any_store.set_alias("houses", "production", v1.version)
    with pytest.raises(Conflict, match=r"alias\(es\) production point at.*'python -m core "
                                       r"alias houses OTHER_VERSION production'.*--force"):
        any_store.delete("houses", v1.version)
    assert len(any_store.versions("houses")) == 2
    any_store.delete("houses", v2.version)
    assert [v.version for v in any_store.versions("houses")] == [v1.version]
    any_store.delete("houses", v1.version, force=True, user="ops")
    assert any_store.list_models() == []
    last = any_store.alias_history("houses")[-1]
    assert (last.from_version, last.to_version, last.user) == (v1.version, None, "ops")
    assert board_versions(any_store, "houses") == set()
    with pytest.raises(NotFound):
        any_store.delete("houses", v1.version)


def test_prune_keeps_newest_aliased_and_recent(any_store, small):
    ids = [any_store.write(small).version for _ in range(6)]
    any_store.set_alias("houses", "production", ids[1])
    assert any_store.prune("houses", keep=2) == [ids[0], ids[2], ids[3]]
    assert [v.version for v in any_store.versions("houses")] == [ids[1], ids[4], ids[5]]
    assert any_store.prune("houses", days=1) == []  # everything is younger than a day
    assert any_store.prune("houses", days=1e-9) == [ids[4]]  # never the newest or aliased
    assert board_versions(any_store, "houses") == {ids[1], ids[5]}


def test_prune_by_age_at_the_ends_of_the_calendar(store, small):
    ids = [store.write(small).version for _ in range(3)]
    # longer ago than dates go: every version is young enough to keep
    for days in (1e6, 1e10, float("inf")):
        assert store.prune("houses", days=days) == []
    # 0 days keeps none for its age: only the newest is left
    assert store.prune("houses", days=0) == ids[:2]
    assert board_versions(store, "houses") == {ids[2]}


def test_alias_moves_that_raced_still_form_one_chain(store, small):
    v1, v2, v3 = (store.write(small).version for _ in range(3))
    store.set_alias("houses", "production", v1)
    # Two writers moved the alias at once; both saw v1 as its version. The second
    # event's writer was wrong about where it came from: it came from v2.
    from core.store.versions import AliasEvent, clock, event_id
    for to in (v2, v3):
        at = clock.now()
        event = AliasEvent(name="houses", alias="production", from_version=v1, to_version=to,
                           user="racer", at=at, id=event_id(at))
        store._board.write_event(("aliases", "houses"), event.id, event.to_dict())
    store._board.bump()
    chain = [(e.from_version, e.to_version) for e in store.alias_history("houses")]
    assert chain == [(None, v1), (v1, v2), (v2, v3)]
    assert store.aliases("houses") == {"production": v3}
    assert VersionStore(store.url).alias_history("houses") == store.alias_history("houses")


@pytest.mark.parametrize("alias", ["latest", "LATEST", "Latest"])
def test_latest_cannot_be_an_alias(store, small, alias):
    info = store.write(small)
    store.write(small)
    with pytest.raises(InvalidArgument, match="'latest' always means the newest version"):
        store.set_alias("houses", alias, info.version)
    assert store.aliases("houses") == {}


def test_history_of_an_unknown_model_is_an_error(store, small):
    with pytest.raises(NotFound, match="No model 'nope'"):
        store.alias_history("nope")
    store.write(small)
    assert store.alias_history("houses") == []  # a model without aliases has none


@pytest.mark.parametrize("kwargs, message", [
    ({}, "needs keep=N"), ({"keep": 0}, "at least 1"), ({"keep": -3}, "at least 1"),
    ({"keep": "2"}, "whole number"), ({"keep": True}, "whole number"),
    ({"days": -1}, "0 or more"), ({"days": float("nan")}, "got NaN"),
    ({"days": "soon"}, "must be a number"),
])
def test_prune_rejects_bad_rules(store, small, kwargs, message):
    store.write(small)
    with pytest.raises(InvalidArgument, match=message):
        store.prune("houses", **kwargs)
    assert len(store.versions("houses")) == 1


# -- search -----------------------------------------------------------------------------------

def test_search_by_text_tag_time_and_metric(store, kinds, small):
    a = store.write(kinds["pipeline"][0])  # houses, tag baseline, rmse 41000.5
    b = store.write(small)  # houses, rmse 3
    c = store.write(kinds["binary"][0])  # churn
    assert [v.version for v in store.search(text="HOUS")] == [a.version, b.version]
    assert [v.version for v in store.search(text="prices")] == [a.version]  # description
    assert store.search(text="%") == [] and store.search(text="_") == []
    assert [v.version for v in store.search(tag="baseline")] == [a.version]
    assert [v.version for v in store.search(metric="rmse", max_value=10)] == [b.version]
    assert [v.version for v in store.search(metric="rmse", min_value=10)] == [a.version]
    assert {v.version for v in store.search(metric="rmse")} == {a.version, b.version}
    assert [v.version for v in store.search(created_after=b.created)] == [c.version, b.version]
    assert [v.version for v in store.search(created_before=b.created)] == [a.version]
    day = b.created.date()
    assert len(store.search(created_after=day, created_before=day + timedelta(days=1))) == 3
    assert len(store.search(created_after=b.created.isoformat())) == 2
    assert store.search(created_after=datetime.now(UTC) + timedelta(hours=1)) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"min_value": 1}, "need a metric"),
    ({"metric": "rmse", "min_value": 5, "max_value": 1}, "larger than max_value"),
    ({"metric": "rmse", "max_value": "low"}, "must be a number"),
    ({"created_after": "yesterday"}, "must be a date or time"),
    ({"created_after": "2024-05-03", "created_before": "2024-05-01"}, "must be earlier"),
])
def test_search_rejects_bad_conditions(store, small, kwargs, message):
    store.write(small)
    with pytest.raises(InvalidArgument, match=message):
        store.search(**kwargs)


# -- integrity --------------------------------------------------------------------------------

def _flip_byte(store: VersionStore, *parts: str) -> None:
    path = store.path(*parts)
    data = bytearray(store.fs.cat_file(path))
    data[len(data) // 2] ^= 0xFF
    store.fs.pipe_file(path, bytes(data))


def test_corrupt_model_file_is_detected_not_loaded(any_store, small):
    info = any_store.write(small)
    _flip_byte(any_store, "houses", info.version, "houses.joblib")
    with pytest.raises(CorruptData, match=rf"houses/{info.version}/houses\.joblib is corrupt: "
                                          r"its sha256 is [0-9a-f]{64}, but "
                                          rf"{info.hash} was recorded.*Restore the file from a "
                                          r"backup, or delete the version"):
        any_store.read("houses")
    problems = any_store.verify()
    assert len(problems) == 1 and "houses.joblib is corrupt" in problems[0]


@pytest.mark.parametrize("file", ["fixative.json", "sample.parquet"])
def test_corrupt_metadata_or_sample_is_detected(store, small, file):
    info = store.write(small)
    _flip_byte(store, "houses", info.version, file)
    with pytest.raises(CorruptData, match=f"{file} is corrupt"):
        store.read("houses")
    assert any(f"{file} is corrupt" in p for p in store.verify())


def test_missing_model_file_is_reported(store, small):
    info = store.write(small)
    os.unlink(store.path("houses", info.version, "houses.joblib"))
    with pytest.raises(CorruptData, match="houses.joblib is missing.*delete the version"):
        store.read("houses")
    assert any("houses.joblib is missing" in p for p in store.verify())


def test_verify_is_clean_on_a_healthy_board(store, kinds):
    for kind in ("pipeline", "array", "hgb"):
        store.write(kinds[kind][0])
    assert store.verify() == []


def test_custom_classes_load_only_when_trusted(store):
    from safety_helpers import Thermostat

    frame = pd.DataFrame({"temp": [18.0, 21.5, 19.0]})
    store.write(bundle(Thermostat(20.0), frame, name="thermo"))
    with pytest.raises(UnsafeModel, match="safety_helpers.Thermostat"):
        store.read("thermo")
    loaded = store.read("thermo", trusted=["safety_helpers.Thermostat"])
    assert loaded.predict(frame).tolist() == [20.0, 20.0, 20.0]


def test_unstorable_models_leave_nothing_behind(store, small):
    broken = ModelBundle({"predict": lambda rows: rows}, small.meta, small.sample)
    with pytest.raises(InvalidArgument, match="cannot be saved with joblib"):
        store.write(broken)
    with pytest.raises(InvalidArgument, match="takes a ModelBundle"):
        store.write(small.model)  # type: ignore[arg-type]
    assert store.list_models() == []
    assert list(store.fs.ls(store.path(".fixative", "tmp"))) == []


def test_big_models_reach_the_disk_while_they_are_written(store, monkeypatch):
    # A model whose arrays are larger than the early-sync step: the file is synced in
    # steps while it is written, and its bytes and hashes are exactly the model's.
    monkeypatch.setattr(files_module.DurableFile, "SYNC_EVERY", 1 << 20)
    synced = []
    real_sync = files_module._datasync

    def counting_sync(fd: int) -> None:
        synced.append(fd)
        real_sync(fd)

    monkeypatch.setattr(files_module, "_datasync", counting_sync)
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(60_000, 12)), columns=[f"f{i}" for i in range(12)])
    model = Ridge().fit(X, rng.normal(size=len(X)))
    model.big_array_ = rng.normal(size=(6 << 20) // 8)  # 6 MiB in one buffer
    info = store.write(bundle(model, X.head(50), name="big"))
    assert synced  # the first step starts one; later ones start when it has finished
    path = store.path("big", info.version, "big.joblib")
    raw = store.fs.cat_file(path)
    assert files_module.hash_bytes(raw).sha256 == info.hash
    loaded = store.read("big", trusted=[])
    assert np.array_equal(loaded.model.big_array_, model.big_array_)
    # the same arrays; predict may differ in the last bit between BLAS calls
    np.testing.assert_allclose(loaded.predict(X.head(5)), model.predict(X.head(5)),
                               rtol=1e-12, atol=0)


def test_the_end_of_a_big_buffer_starts_its_sync_before_the_writer_waits(tmp_path,
                                                                         monkeypatch):
    # While the first step's sync is still running, the rest of a big buffer is
    # written; its sync is queued at once (not left for the final fsync).
    monkeypatch.setattr(files_module.DurableFile, "SYNC_EVERY", 1 << 20)
    release = threading.Event()
    sizes = []

    def slow_sync(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        release.wait(10)

    monkeypatch.setattr(files_module, "_datasync", slow_sync)
    data = os.urandom((3 << 20) + 12_345)
    with open(tmp_path / "model.bin", "wb") as raw, files_module.DurableFile(raw) as durable:
        durable.write(data)
        release.set()
        durable.sync()
    assert len(sizes) == 2
    assert sizes[-1] == len(data)
    assert (tmp_path / "model.bin").read_bytes() == data


def test_a_write_that_fails_midway_waits_for_its_sync_and_leaves_nothing(store, monkeypatch):
    monkeypatch.setattr(files_module.DurableFile, "SYNC_EVERY", 1 << 20)

    class FailsLate:
        def __reduce__(self):
            raise TypeError("cannot pickle this part")

    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    model = Ridge().fit(X, X["a"])
    model.big_array_ = rng.normal(size=(4 << 20) // 8)  # written (and syncing) first
    model.z_unpicklable_ = FailsLate()
    with pytest.raises(InvalidArgument, match="cannot be saved with joblib"):
        store.write(bundle(model, X, name="late"))
    assert store.list_models() == []
    assert list(store.fs.ls(store.path(".fixative", "tmp"))) == []


# -- the index --------------------------------------------------------------------------------

def _snapshot(store: VersionStore) -> tuple:
    models = store.list_models()
    return (
        [m.to_dict() for m in models],
        {m.name: [v.to_dict() for v in store.versions(m.name)] for m in models},
        {m.name: [e.to_dict() for e in store.alias_history(m.name)] for m in models},
        [r.to_dict() for r in store.records("card")],
    )


def _filled(store: VersionStore, kinds: dict) -> None:
    for kind in ("pipeline", "binary", "array"):
        store.write(kinds[kind][0])
    again = store.write(kinds["pipeline"][0])
    store.set_alias("houses", "production", again.version, user="ana")
    store.add_record("card", "houses", {"intended_use": "pricing"}, version=again.version)


def test_reindex_rebuilds_what_the_board_holds(store, kinds):
    _filled(store, kinds)
    before = _snapshot(store)
    counts = store.reindex()
    assert counts["versions"] == 4 and counts["models"] == 3 and counts["aliases"] == 1
    assert _snapshot(store) == before
    assert {v.version for v in store.versions("houses")} == board_versions(store, "houses")


def test_deleted_or_damaged_index_is_rebuilt_transparently(store, kinds):
    _filled(store, kinds)
    before = _snapshot(store)
    os.unlink(store.index_path)
    assert _snapshot(VersionStore(store.url)) == before
    with open(store.index_path, "wb") as f:
        f.write(b"this is not a duckdb file" * 100)
    assert _snapshot(VersionStore(store.url)) == before


def test_changes_by_another_process_are_seen(store, small, tmp_path):
    store.write(small)
    assert len(store.versions("houses")) == 1
    other = VersionStore(store.url)  # as another process would: its own index connection
    marker = store.change_marker()
    info = other.write(small)
    other.set_alias("houses", "staging", info.version)
    assert store.change_marker() != marker
    assert [v.version for v in store.versions("houses")][-1] == info.version
    assert store.aliases("houses") == {"staging": info.version}
    # a version folder copied in by hand (or by pins) is found as well
    shutil.copytree(store.path("houses", info.version), tmp_path / "board" / "houses" /
                    "20300101T000000Z-abcde")
    assert store.versions("houses")[-1].version == "20300101T000000Z-abcde"


def test_a_models_listing_outlives_changes_elsewhere_and_only_those(store, small, tmp_path):
    first = store.write(small)
    other = VersionStore(store.url)  # another process, with its own index connection
    listed = store.versions("houses")

    # Changes that leave this model alone: the board's marker moves, the answer stays
    # right, and it no longer needs the index.
    marker = store.change_marker()
    other.write(bundle(small.model, small.sample, name="flats"))
    other.add_record("card", "houses", {"intended_use": "pricing"}, version=first.version)
    assert store.change_marker() != marker
    sessions = []
    real_session = store._index.session

    def counted(*args, **kwargs):
        sessions.append(args)
        return real_session(*args, **kwargs)

    store._index.session = counted
    assert store.versions("houses") == listed
    assert sessions == []  # answered without opening the index

    # Changes to the model itself are always seen.
    second = other.write(small)
    assert [v.version for v in store.versions("houses")] == [first.version, second.version]
    other.set_alias("houses", "production", first.version)
    assert store.versions("houses")[0].aliases == ["production"]
    assert store.aliases("houses") == {"production": first.version}
    other.set_alias("houses", "production", second.version)
    assert store.aliases("houses") == {"production": second.version}
    assert [e.to_version for e in store.alias_history("houses")] == [first.version,
                                                                    second.version]
    other.delete("houses", first.version)
    assert [v.version for v in store.versions("houses")] == [second.version]

    # A folder that is not a version yet (pins writing it) is not vouched for: once it
    # holds its data.txt, the listing has it, although the folder names did not change.
    pending = tmp_path / "board" / "houses" / "20300101T000000Z-abcde"
    shutil.copytree(store.path("houses", second.version), pending)
    (pending / "data.txt").rename(tmp_path / "data.txt")
    assert [v.version for v in store.versions("houses")] == [second.version]
    (tmp_path / "data.txt").rename(pending / "data.txt")
    other._board.bump()  # a change elsewhere: the names alone must not vouch for it
    assert [v.version for v in store.versions("houses")] == [second.version,
                                                             pending.name]


def test_reindex_removes_staging_left_by_dead_writers(store, small):
    store.write(small)
    tmp = store.path(".fixative", "tmp")
    assert os.listdir(tmp) == []

    dead = os.path.join(tmp, f"999999999-{staging_module.HOST}-{'0' * 32}")  # no such pid
    os.makedirs(dead)
    with open(os.path.join(dead, "houses.joblib"), "wb") as f:
        f.write(b"half a model")
    assert [v.version for v in store.versions("houses")] == [small.version]
    assert store.reindex()["removed_staging"] == 1
    assert os.listdir(tmp) == []


# -- records ----------------------------------------------------------------------------------

def test_records_are_append_only_with_history(any_store, small):
    info = any_store.write(small)
    first = any_store.add_record("card", "houses", {"caveats": "old data"}, user="ana")
    second = any_store.add_record("card", "houses", {"caveats": "fresh data"},
                                  version=info.version)
    any_store.add_record("monitoring", "houses", {"window": "day"})
    cards = any_store.records("card", "houses")
    assert [r.payload for r in cards] == [{"caveats": "old data"}, {"caveats": "fresh data"}]
    assert cards[0].user == "ana" and cards[0].at < cards[1].at and first.id < second.id
    assert [r.id for r in any_store.records("card", version=info.version)] == [second.id]
    assert len(any_store.records("monitoring")) == 1
    assert any_store.records("endpoint") == []


@pytest.mark.parametrize("payload, error, message", [
    (["not", "a", "dict"], InvalidArgument, "must be a mapping"),
    ({"x": float("nan")}, InvalidArgument, "plain JSON"),
    ({"x": object()}, InvalidArgument, "plain JSON"),
    ({"x": "y" * (1 << 20)}, PayloadTooLarge, "at most 1,048,576"),
])
def test_bad_records_are_refused(store, small, payload, error, message):
    store.write(small)
    with pytest.raises(error, match=message):
        store.add_record("card", "houses", payload)
    assert store.records("card") == []


def test_records_need_an_existing_model(store, small):
    with pytest.raises(NotFound, match="No model 'houses'"):
        store.add_record("card", "houses", {})
    store.write(small)
    with pytest.raises(NotFound, match="No version"):
        store.add_record("card", "houses", {}, version="20200101T000000Z-00000")


def test_change_marker_moves_with_every_change(store, small):
    markers = [store.change_marker()]
    info = store.write(small)
    markers.append(store.change_marker())
    store.set_alias("houses", "production", info.version)
    markers.append(store.change_marker())
    store.add_record("card", "houses", {"a": 1})
    markers.append(store.change_marker())
    assert len(set(markers)) == 4
    assert store.change_marker() == markers[-1]  # reading changes nothing


# -- locations --------------------------------------------------------------------------------

def test_default_location_comes_from_the_environment(tmp_path, monkeypatch, small):
    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "from-env"))
    store = VersionStore()
    assert store.url == str(tmp_path / "from-env")
    store.write(small)
    assert (tmp_path / "from-env" / "houses").is_dir()
    monkeypatch.delenv("FIXATIVE_STORE")
    monkeypatch.chdir(tmp_path)
    assert VersionStore().url == str(tmp_path / "fixative-store")


def test_a_file_is_not_a_store(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception, match="is a file, not a folder"):
        VersionStore(tmp_path / "file")
