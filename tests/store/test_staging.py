"""A local version is on disk before it is visible: every staged file and the stage folder
are synced (small ones together, at commit) before the rename, and a failed write
leaves no sync running and nothing behind."""

from __future__ import annotations

import errno
import os
import threading

import pytest

import core.store.files as files_module
import core.store.staging as staging_module
from core.model.bundle import bundle
from core.store.board import open_board
from core.store.versionstore import VersionStore


def _spy(monkeypatch, before=None):
    """Record each fsync by path (with the version folders there at the time); ``before``
    runs first and may fail or wait. The real fsync still runs."""
    synced: list[tuple[str, bool]] = []
    real = files_module.fsync_path

    def spy(path: str) -> None:
        if before is not None:
            before(path)
        real(path)
        synced.append((path, os.path.exists(path)))

    monkeypatch.setattr(files_module, "fsync_path", spy)
    monkeypatch.setattr(staging_module, "fsync_path", spy)
    return synced


def test_every_file_and_the_stage_are_synced_before_the_version_appears(
        tmp_path, monkeypatch, house_model, house_data):
    store = VersionStore(tmp_path / "board")
    visible: list[bool] = []
    model_dir = str(tmp_path / "board" / "houses")

    def seen(path: str) -> None:  # whether any version of houses is visible yet
        if path != model_dir:
            visible.append(os.path.isdir(model_dir) and bool(os.listdir(model_dir)))

    synced = _spy(monkeypatch, seen)
    info = store.write(bundle(house_model, house_data, name="houses"))
    files = set(os.listdir(tmp_path / "board" / "houses" / info.version))
    assert files == {"houses.joblib", "sample.parquet", "fixative.json", "data.txt",
                     "data.txt.sha256"}
    stage_syncs = [p for p, _ in synced if "/.fixative/tmp/" in p]
    stage = min(stage_syncs, key=len)  # the folder itself
    assert {p[len(stage) + 1:] for p in stage_syncs if p != stage} == files
    assert not any(visible)  # all of them before the rename
    assert synced[-1] == (model_dir, True)  # and the rename itself, after it
    assert store.read("houses").predict(house_data.head(3)).tolist() == \
        house_model.predict(house_data.head(3)).tolist()


def test_a_failed_sync_fails_the_write_and_leaves_nothing(tmp_path, monkeypatch,
                                                          house_model, house_data):
    store = VersionStore(tmp_path / "board")

    def fail_on_data_txt(path: str) -> None:
        if path.endswith("/data.txt"):
            raise OSError(errno.EIO, "I/O error", path)

    _spy(monkeypatch, fail_on_data_txt)
    with pytest.raises(OSError, match="I/O error"):
        store.write(bundle(house_model, house_data, name="houses"))
    assert store.list_models() == []
    assert os.listdir(tmp_path / "board" / ".fixative" / "tmp") == []
    monkeypatch.undo()
    assert store.write(bundle(house_model, name="houses")).version  # the next one works


def test_a_stage_given_up_waits_for_the_syncs_it_started(tmp_path, monkeypatch):
    board = open_board(tmp_path / "board")
    release = threading.Event()
    started = threading.Event()

    def slow(path: str) -> None:
        started.set()
        release.wait(30)

    synced = _spy(monkeypatch, slow)
    with pytest.raises(RuntimeError), board.stage() as stage:
        stage.write_bytes("small.bin", b"x" * 1000)
        started.wait(30)
        threading.Timer(0.2, release.set).start()  # the sync is still running when the
        raise RuntimeError("the write fails")  # stage is given up
    assert synced == [(f"{stage.dir}/small.bin", True)]  # its file was there throughout
    assert not os.path.exists(stage.dir)


def test_a_large_staged_file_is_synced_as_it_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(staging_module, "SYNC_AT_COMMIT", 1000)
    board = open_board(tmp_path / "board")
    synced = _spy(monkeypatch)
    datasyncs = []
    real = files_module.os.fsync
    monkeypatch.setattr(files_module.os, "fsync", lambda fd: (datasyncs.append(fd), real(fd)))
    with board.stage() as stage:
        stage.write_bytes("big.bin", b"x" * 2000)  # over the limit: DurableFile.sync
        assert synced == [] and len(datasyncs) == 1
        stage.write_bytes("small.bin", b"x" * 1000)  # at the limit: its sync starts
        stage._wait([])
        assert synced == [(f"{stage.dir}/small.bin", True)]
