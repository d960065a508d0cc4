"""Listings kept on disk: a new store object answers from them while the board is
unchanged, never after a change, and never from a damaged file."""

from __future__ import annotations

import os

import pytest

from core.model.bundle import bundle
from core.store.index import Index
from core.store.versionstore import VersionStore


@pytest.fixture
def board(tmp_path, house_model, house_data):
    store = VersionStore(tmp_path / "board")
    for rmse in (1.0, 2.0):
        store.write(bundle(house_model, house_data, name="houses", metrics={"rmse": rmse},
                           tags=["demo"]))
    store.write(bundle(house_model, name="other"))
    store.set_alias("houses", "production", store.versions("houses")[0].version)
    return tmp_path / "board"


def _no_index(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the index was opened")

    monkeypatch.setattr(Index, "session", refuse)


def test_a_new_store_lists_from_the_kept_answers_without_the_index(board, monkeypatch):
    first = VersionStore(board)
    models, versions = first.list_models(), first.versions("houses")
    _no_index(monkeypatch)
    fresh = VersionStore(board)
    assert fresh.list_models() == models
    assert fresh.versions("houses") == versions
    assert versions[0].aliases == ["production"] and versions[0].metrics == {"rmse": 1.0}
    assert versions[0].created.tzinfo is not None


def test_a_change_makes_the_kept_answers_stale(board, house_model, monkeypatch):
    VersionStore(board).versions("houses")
    VersionStore(board).list_models()
    added = VersionStore(board).write(bundle(house_model, name="houses"))
    fresh = VersionStore(board)
    assert fresh.versions("houses")[-1].version == added.version
    assert {m.name: m.n_versions for m in fresh.list_models()} == {"houses": 3, "other": 1}
    moved = VersionStore(board)
    moved.set_alias("houses", "production", added.version)
    assert VersionStore(board).versions("houses")[-1].aliases == ["production"]


def test_a_damaged_or_foreign_file_is_ignored(board):
    store = VersionStore(board)
    expected = store.versions("houses")
    folder = store.index_path + ".listings"
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b'{"format": 1, "marker": "')  # cut short
    assert VersionStore(board).versions("houses") == expected
    marker = store.change_marker()
    for items in ("3", '[{"bogus": 1}]', '[{"name": "houses", "created": "yesterday"}]'):
        for name in os.listdir(folder):  # the board's marker, but not a listing
            with open(os.path.join(folder, name), "w") as f:
                f.write(f'{{"format": 1, "marker": "{marker}", "key": ["versions", "houses"], '
                        f'"items": {items}}}')
        assert VersionStore(board).versions("houses") == expected


def test_reindex_drops_the_kept_answers(board):
    store = VersionStore(board)
    store.list_models()
    assert os.listdir(store.index_path + ".listings")
    store.reindex()
    assert not os.path.exists(store.index_path + ".listings")
    assert [m.name for m in VersionStore(board).list_models()] == ["houses", "other"]
