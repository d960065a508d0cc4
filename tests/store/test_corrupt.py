"""Damaged boards: reindex and verify report each damaged entry as one line and go on;
reading a damaged version raises CorruptData, never an OS or parser error."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import store_fixtures
import yaml

from core.cli.main import main
from core.errors import CorruptData, NotFound
from core.model.bundle import ModelBundle, bundle
from core.store.versions import event_id
from core.store.versionstore import VersionStore
from core.times import parse_iso

s3_server, s3_env, s3_store, any_store = (store_fixtures.s3_server, store_fixtures.s3_env,
                                          store_fixtures.s3_store, store_fixtures.any_store)
GHOST = "20300101T000000Z-00000"
EVENT = event_id(parse_iso("2030-01-01T00:00:00Z"))


@pytest.fixture(scope="module")
def small(house_data, house_model) -> ModelBundle:
    return bundle(house_model, house_data.head(100), name="houses", metrics={"rmse": 3.0},
                  description="House prices")


@pytest.fixture
def board(tmp_path, small) -> tuple[VersionStore, str, str]:
    """A store with two versions of 'houses' (the newest aliased) and one of 'flats'."""
    store = VersionStore(tmp_path / "board")
    old = store.write(small).version
    new = store.write(small).version
    store.set_alias("houses", "production", new)
    store.write(bundle(small.model, small.sample, name="flats"))
    return store, old, new


def _replace_with_folder(path: str) -> None:
    os.unlink(path)
    os.makedirs(os.path.join(path, "inside"))


def _alias_event(store: VersionStore, body: bytes | None) -> str:
    path = store.path(".fixative", "aliases", "houses", f"{EVENT}.json")
    if body is None:
        os.makedirs(os.path.join(path, "inside"))
    else:
        Path(path).write_bytes(body)
    return f".fixative/aliases/houses/{EVENT}.json"


def _event(**fields) -> bytes:
    base = {"name": "houses", "alias": "production", "from_version": None,
            "to_version": None, "user": "ana", "at": "2030-01-01T00:00:00.000000Z", "id": EVENT}
    return json.dumps({k: v for k, v in (base | fields).items() if v != "-"}).encode()


def _version_file(file: str, change: Callable[[str], None]) -> Callable:
    def damage(store: VersionStore, version: str) -> str:
        change(store.path("houses", version, file))
        return f"houses/{version}/{file}"
    return damage


# case -> (damage(store, newest version) -> where, what the problem line says,
#          what reading the newest version raises: None for "it still reads")
CASES = {
    "data.txt is a folder": (
        _version_file("data.txt", _replace_with_folder),
        "{where} is a folder where a file should be. Delete that folder and restore the "
        "file from a backup, or delete the version folder", CorruptData),
    "the model file is a folder": (
        _version_file("houses.joblib", _replace_with_folder),
        "{where} is a folder where a file should be.", CorruptData),
    "fixative.json is a folder": (
        _version_file("fixative.json", _replace_with_folder),
        "{where} is a folder where a file should be.", CorruptData),
    "data.txt is not YAML": (
        _version_file("data.txt", lambda p: Path(p).write_text("title: [unclosed\n")),
        "{where} is unreadable: data.txt is not valid YAML (ParserError). Restore it from a "
        "backup, or delete the folder", CorruptData),
    "data.txt holds a list": (
        _version_file("data.txt", lambda p: Path(p).write_text("- a\n- b\n")),
        "{where} is unreadable: data.txt does not hold a mapping.", CorruptData),
    "data.txt is huge": (
        _version_file("data.txt", lambda p: Path(p).write_bytes(b"a: b\n" * (1 << 20))),
        "{where} is unreadable: data.txt is over 4 MiB", CorruptData),
    "a file where a version folder should be": (
        lambda store, _v: (Path(store.path("houses", GHOST)).write_text("notes"),
                           f"houses/{GHOST}")[1],
        "{where} is a file where a version folder should be (a version is a folder holding "
        "data.txt and the model file). Move it out of the board; then run 'python -m core "
        "reindex'.", None),
    "an alias event that is not JSON": (
        lambda store, _v: _alias_event(store, b"{not json"),
        "{where} is not a valid alias event: it is not valid JSON. Delete it (the history "
        "loses that entry) or restore it from a backup; then run 'python -m core reindex'.",
        None),
    "an alias event that is not an object": (
        lambda store, _v: _alias_event(store, b"[1, 2]"),
        "{where} is not a valid alias event: it holds a JSON list, not an object.", None),
    "an alias event without an alias": (
        lambda store, _v: _alias_event(store, _event(alias="-")),
        "{where} is not a valid alias event: its 'alias' is None, not a name.", None),
    "an alias event with a number for a version": (
        lambda store, _v: _alias_event(store, _event(to_version=7)),
        "{where} is not a valid alias event: its 'to_version' is 7, not a name.", None),
    "an alias event without a time": (
        lambda store, _v: _alias_event(store, _event(at="soon")),
        "{where} is not a valid alias event: its 'at' is 'soon', not a time.", None),
    "an alias event in another model's folder": (
        lambda store, _v: _alias_event(store, _event(name="flats")),
        "{where} is not a valid alias event: it names model 'flats' but is in the folder of "
        "'houses'.", None),
    "an alias event that is a folder": (
        lambda store, _v: _alias_event(store, None),
        "{where} is a folder where an alias event file should be. Delete it; then run "
        "'python -m core reindex'.", None),
    "an alias moved to an unknown version": (
        lambda store, _v: (_alias_event(store, _event(to_version=GHOST)), "houses")[1],
        f"{{where}}: alias 'production' points at version '{GHOST}', which is not a readable "
        "version on the board. Move it with 'python -m core alias houses VERSION "
        "production'.", None),
}


def _damaged(board, case: str) -> tuple[VersionStore, str, str, str]:
    store, old, new = board
    damage, message, _ = CASES[case]
    where = damage(store, new)
    return VersionStore(store.url), old, new, message.format(where=where)


@pytest.mark.parametrize("case", CASES)
def test_reindex_reports_each_damaged_entry_and_indexes_the_rest(board, case):
    store, old, new, message = _damaged(board, case)
    report = store.reindex_report()
    assert len(report.problems) == 1, report.problems
    assert report.problems[0].startswith(message)
    assert report.counts["problems"] == 1
    assert old in {v.version for v in store.versions("houses")}
    assert [m.name for m in store.list_models()] == ["flats", "houses"]
    assert store.read("flats").meta.name == "flats"


@pytest.mark.parametrize("case", CASES)
def test_verify_reports_each_damaged_entry_once(board, case):
    store, _old, _new, message = _damaged(board, case)
    problems = store.verify()
    assert len(problems) == 1, problems
    assert problems[0].startswith(message)


@pytest.mark.parametrize("command", ["verify", "reindex"])
@pytest.mark.parametrize("case", CASES)
def test_the_cli_prints_one_error_line_per_problem_and_fails(board, case, command, capsys):
    store, _old, _new, message = _damaged(board, case)
    # a second damaged entry: the walk goes on after the first
    Path(store.path("flats", GHOST)).write_text("notes")
    code = main([command, "--store", store.url])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: ") for line in lines), err
    assert any(line.startswith(f"error: {message}") for line in lines)
    assert f"flats/{GHOST} is a file where a version folder should be" in err
    assert "Traceback" not in err
    assert out.startswith("reindexed: " if command == "reindex" else "checked ")


@pytest.mark.parametrize("case", CASES)
def test_reading_a_damaged_version_raises_corrupt_data(board, case):
    store, old, new, message = _damaged(board, case)
    raises = CASES[case][2]
    if raises is None:
        assert store.read("houses", version=new).version == new
    else:
        with pytest.raises(raises, match=rf"houses/{new}"):
            store.read("houses", version=new)
    assert store.read("houses", version=old).version == old


def test_a_pins_version_whose_data_txt_is_garbage_is_corrupt_not_missing(board):
    store, old, new = board
    folder = Path(store.path("houses", new))
    for file in ("fixative.json", "data.txt.sha256"):
        (folder / file).unlink()
    (folder / "data.txt").write_text("title: [unclosed\n")
    with pytest.raises(CorruptData, match=rf"houses/{new}/data.txt is unreadable"):
        store.read("houses", version=new)  # the index still lists it
    unreadable, alias = store.reindex_report().problems
    assert unreadable.startswith(f"houses/{new}/data.txt is unreadable")
    assert alias.startswith(f"houses: alias 'production' points at version '{new}', which is "
                            "not a readable version")
    assert [v.version for v in store.versions("houses")] == [old]
    with pytest.raises(CorruptData, match=rf"houses/{new} cannot be read: data.txt is not "
                                          r"valid YAML \(ParserError\)\. Restore it from a "
                                          r"backup, or delete the folder houses/"):
        store.read("houses", version=new)
    # a version the board never had is still simply not found
    with pytest.raises(NotFound, match=f"No version '{GHOST}'"):
        store.read("houses", version=GHOST)


# -- data.txt is hashed when written --------------------------------------------------------

def _edit_data_txt(store: VersionStore, version: str, edit: Callable[[dict], None]) -> None:
    path = store.path("houses", version, "data.txt")
    doc = yaml.safe_load(store.fs.cat_file(path))
    edit(doc)
    store.fs.pipe_file(path, yaml.safe_dump(doc, sort_keys=True).encode())


EDITS = {
    "title": lambda d: d.update(title="houses: a pinned Ridge object"),
    "description": lambda d: d.update(description="Something else"),
    "metrics": lambda d: d["user"]["user"]["metrics"].update(rmse=0.5),
    "prototype": lambda d: d["user"]["vetiver_meta"].update(prototype='{"bedrooms": 1}'),
}


def test_data_txt_hash_is_written_beside_it_as_sha256sum_does(any_store, small):
    info = any_store.write(small)
    raw = any_store.fs.cat_file(any_store.path("houses", info.version, "data.txt"))
    sidecar = any_store.fs.cat_file(any_store.path("houses", info.version, "data.txt.sha256"))
    assert sidecar == f"{hashlib.sha256(raw).hexdigest()}  data.txt\n".encode()
    assert any_store.verify_report().notes == []


@pytest.mark.parametrize("field", EDITS)
def test_an_edited_data_txt_is_found_by_verify(any_store, small, field):
    first = any_store.write(small)
    second = any_store.write(small)
    _edit_data_txt(any_store, second.version, EDITS[field])
    (problem,) = any_store.verify()
    assert problem.startswith(f"houses/{second.version}/data.txt was changed after it was "
                              "written: its sha256 is ")
    assert "was recorded in data.txt.sha256" in problem and "Restore the file" in problem
    assert first.version not in problem


def test_an_edited_data_txt_fails_the_cli_verify(board, capsys):
    store, _old, new = board
    _edit_data_txt(store, new, EDITS["description"])
    assert main(["verify", "--store", store.url]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: houses/{new}/data.txt was changed after it was written")
    assert err.count("\n") == 1 and "checked 3 version(s): 1 problem(s) found" in out


def test_a_missing_data_txt_hash_is_a_problem_for_a_version_that_recorded_one(board):
    store, _old, new = board
    os.unlink(store.path("houses", new, "data.txt.sha256"))
    (problem,) = store.verify()
    assert problem.startswith(f"houses/{new}/data.txt.sha256 is missing, so data.txt cannot "
                              "be checked.")


def _as_written_before_data_hashes(store: VersionStore, version: str) -> None:
    """Make a version look as Fixative wrote it before it recorded data.txt's hash."""
    folder = Path(store.path("houses", version))
    (folder / "data.txt.sha256").unlink()
    meta = json.loads((folder / "fixative.json").read_bytes())
    del meta["fixative"]["data_hash"]
    raw = json.dumps(meta).encode()
    (folder / "fixative.json").write_bytes(raw)
    doc = yaml.safe_load((folder / "data.txt").read_bytes())
    doc["user"]["fixative"].update(meta_sha256=hashlib.sha256(raw).hexdigest(),
                                   meta_size=len(raw))
    (folder / "data.txt").write_text(yaml.safe_dump(doc, sort_keys=True))


def test_versions_written_before_data_hashes_verify_with_a_note(board, capsys):
    store, old, _new = board
    _as_written_before_data_hashes(store, old)
    report = store.verify_report()
    assert report.problems == []
    assert report.notes == [f"1 version(s) have no recorded data.txt hash (pinned with pins "
                            "or vetiver, or written by an older Fixative), so their data.txt "
                            f"was not checked: houses/{old}."]
    assert store.read("houses", version=old).version == old
    assert main(["verify", "--store", store.url]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("note: 1 version(s) have no recorded data.txt hash")
    assert "checked 3 version(s): every stored file matches its recorded hash" in out


def test_a_copied_version_folder_still_verifies(board, tmp_path):
    store, _old, new = board
    shutil.copytree(store.path("houses", new), tmp_path / "board" / "houses" / GHOST)
    assert VersionStore(store.url).verify() == []


def test_a_data_txt_that_cannot_be_opened_is_one_line(board, monkeypatch):
    # chmod 000 does not stop root, who runs CI; refuse the open the way the OS would
    store, old, new = board
    target = store.path("houses", new, "data.txt")
    real_open = open

    def refusing(path, *args, **kwargs):
        if path == target:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("core.store.board.open", refusing, raising=False)
    message = (f"houses/{new}/data.txt cannot be opened (permission denied). Let the user "
               "running Fixative read it, e.g. with chmod.")
    assert store.reindex_report().problems[0] == message
    assert store.verify()[0] == message
    assert old in {v.version for v in store.versions("houses")}
