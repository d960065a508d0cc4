"""``python -m core list`` from the listing kept on disk (core.cli.quick): the same output
as the full command, and never a stale or forged answer.

Each change below is made the way other processes make it (another store object, pins
itself, the CLI in a new process, a folder removed by hand); after it the kept listing
must not answer, the full command must show the change, and the listing it keeps must
answer the next time.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import joblib
import pins
import pytest
from store_fixtures import PINS_LEAKS_A_FILE

from core.cli import quick
from core.cli.main import build_parser, main
from core.model.bundle import bundle
from core.store import snapshot
from core.store.versions import ModelInfo, VersionInfo
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source_board(tmp_path_factory, house_model, house_data) -> Path:
    """Two models, one with two versions and an alias; the models listing kept on disk."""
    root = tmp_path_factory.mktemp("quick") / "board"
    store = VersionStore(root)
    first = store.write(bundle(house_model, house_data, name="houses", metrics={"rmse": 1.0}))
    store.write(bundle(house_model, name="houses", description="second\nline"))
    store.write(bundle(house_model, name="other"))
    store.set_alias("houses", "production", first.version)
    store.set_alias("houses", "staging", first.version)
    VersionStore(root).list_models()  # keeps the listing, as any earlier command does
    return root


@pytest.fixture
def board(source_board, tmp_path) -> Path:
    """A copy of the source board (folder times too: the kept listing stays current)."""
    root = tmp_path / "board"
    shutil.copytree(source_board, root)
    assert quick.answer(["list", "--json", "--store", str(root)]) == 0
    return root


def _listing_file(root: Path) -> Path:
    return root / ".fixative" / "index.duckdb.listings" / "models.json"


def quick_output(capsys, *argv: str) -> tuple[int | None, str]:
    code = quick.answer(list(argv))
    return code, capsys.readouterr().out


def full_output(capsys, *argv: str) -> str:
    """The full command's output, without the quick path."""
    args = build_parser("list").parse_args(list(argv))
    assert args.func(args) == 0
    return capsys.readouterr().out


def listed(capsys, root: Path) -> dict[str, tuple[int, dict[str, str]]]:
    """name -> (versions, aliases) as ``python -m core list --json`` prints it."""
    assert main(["list", "--json", "--store", str(root)]) == 0
    return {m["name"]: (m["n_versions"], m["aliases"])
            for m in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize("extra", [(), ("--json",)], ids=["table", "json"])
def test_the_kept_listing_prints_what_the_full_command_prints(board, capsys, extra):
    argv = ("list", *extra, "--store", str(board))
    code, fast = quick_output(capsys, *argv)
    assert code == 0
    assert fast == full_output(capsys, *argv)
    assert "production" in fast and "houses" in fast and "other" in fast


def test_an_empty_store_says_what_to_do_from_either_path(tmp_path, capsys):
    root = tmp_path / "empty"
    VersionStore(root).list_models()
    assert quick.answer(["list", "--store", str(root)]) == 0
    fast = capsys.readouterr()
    args = build_parser("list").parse_args(["list", "--store", str(root)])
    args.func(args)
    assert capsys.readouterr() == fast and fast.out == ""
    assert "python -m core write" in fast.err


def test_the_kept_fields_are_the_listed_classes_fields():
    # a field added to ModelInfo or VersionInfo must be kept too, in the same order
    # (the JSON output lists fields in it)
    for kind, cls in (("models", ModelInfo), ("versions", VersionInfo)):
        assert list(snapshot._FIELDS[kind]) == [f.name for f in fields(cls)]


@pytest.mark.parametrize("argv,expected", [
    (["list"], (None, False)),
    (["list", "--json", "--store", "b"], ("b", True)),
    (["list", "--store=b", "--json"], ("b", True)),
    (["list", "--store", "a", "--store", "b"], ("b", False)),  # the last wins, as in argparse
    (["list", "--store"], None),  # argparse reports the missing value
    (["list", "--store", "--json"], None),
    (["list", "--store", ""], None),  # the full command says --store is empty
    (["list", "--store=  "], None),
    (["list", "--sto", "b"], None),  # abbreviations are argparse's business
    (["list", "-h"], None),
    (["list", "--json", "extra"], None),
    (["versions", "houses"], None),
    ([], None),
    (["list", "--store", "b" * 100_000], ("b" * 100_000, False)),
], ids=lambda v: " ".join(v)[:40] if isinstance(v, list) else None)
def test_only_the_plain_spellings_of_list_take_the_quick_path(argv, expected):
    assert quick.list_options(argv) == expected


def test_no_quick_answer_for_urls_missing_folders_or_files(tmp_path, capsys):
    assert quick.answer(["list", "--store", "s3://bucket/prefix"]) is None
    missing = tmp_path / "nothing-here"
    assert quick.answer(["list", "--store", str(missing)]) is None
    assert main(["list", "--store", str(missing)]) == 1
    assert "There is no store at" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert quick.answer(["list", "--store", str(a_file)]) is None
    assert quick.answer(["list", "--store", str(tmp_path / "x\0y")]) is None


def _check_change_is_seen(capsys, root: Path, expected: dict) -> None:
    """After a change: the kept listing does not answer, the full command shows the
    change, and the listing it keeps answers next time with the same."""
    capsys.readouterr()  # what the change printed (pins says what it wrote)
    assert quick.answer(["list", "--store", str(root)]) is None
    assert listed(capsys, root) == expected
    code, out = quick_output(capsys, "list", "--json", "--store", str(root))
    assert code == 0
    assert {m["name"]: (m["n_versions"], m["aliases"]) for m in json.loads(out)} == expected


def test_a_version_written_by_another_store_is_listed(board, capsys, house_model):
    VersionStore(board).write(bundle(house_model, name="other"))
    _check_change_is_seen(capsys, board, {
        "houses": (2, {"production": _alias(board), "staging": _alias(board)}),
        "other": (2, {})})


def test_an_alias_moved_by_another_store_is_listed(board, capsys):
    store = VersionStore(board)
    latest = store.versions("houses")[-1].version
    store.set_alias("houses", "production", latest)
    _check_change_is_seen(capsys, board, {
        "houses": (2, {"production": latest, "staging": _alias(board)}),
        "other": (1, {})})


# pins-python leaves the handle of the data.txt it writes to the garbage collector.
@pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <_io.FileIO name=:pytest.PytestUnraisableExceptionWarning")
@PINS_LEAKS_A_FILE
def test_versions_pinned_by_pins_itself_are_listed(board, capsys, house_model):
    pboard = pins.board_folder(str(board), allow_pickle_read=True)
    pboard.pin_write(house_model, "houses", type="joblib")  # a model Fixative knows
    aliases = {"production": _alias(board), "staging": _alias(board)}
    _check_change_is_seen(capsys, board, {"houses": (3, aliases), "other": (1, {})})
    pboard.pin_write(house_model, "pinned", type="joblib")  # a new model
    _check_change_is_seen(capsys, board, {"houses": (3, aliases), "other": (1, {}),
                                          "pinned": (1, {})})


def test_a_version_deleted_behind_the_store_is_no_longer_listed(board, capsys):
    store = VersionStore(board)
    latest = store.versions("houses")[-1].version
    shutil.rmtree(board / "houses" / latest)  # by hand, or by pins' pin_version_delete
    _check_change_is_seen(capsys, board, {
        "houses": (1, {"production": _alias(board), "staging": _alias(board)}),
        "other": (1, {})})


@pytest.mark.process
def test_a_write_by_the_cli_in_another_process_is_listed(board, capsys, tmp_path,
                                                         house_model):
    model_file = tmp_path / "model.joblib"
    joblib.dump(house_model, model_file)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "core", "write", str(model_file), "--name",
                           "written", "--store", str(board)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "written" in listed(capsys, board)
    assert quick.answer(["list", "--store", str(board)]) == 0
    assert "written" in capsys.readouterr().out


def _alias(root: Path) -> str:
    return VersionStore(root).versions("houses")[0].version


def _kept(root: Path) -> dict:
    return json.loads(_listing_file(root).read_text())


@pytest.mark.parametrize("damage", [
    b"",
    b'{"format": 1, "marker": "',  # cut short
    b"\xff\xfe not text",
    pickle.dumps({"format": 1}),  # a pickle is bytes to JSON, never loaded
    b"[]",
    b"null",
], ids=["empty", "cut", "binary", "pickle", "list", "null"])
def test_a_damaged_kept_listing_is_ignored(board, capsys, damage):
    expected = listed(capsys, board)
    _listing_file(board).write_bytes(damage)
    assert quick.answer(["list", "--store", str(board)]) is None
    assert listed(capsys, board) == expected  # answered by the index, and kept again
    assert quick.answer(["list", "--store", str(board)]) == 0


@pytest.mark.parametrize("forge", [
    lambda doc, row: row.update(n_versions="2; DROP TABLE versions"),
    lambda doc, row: row.update(n_versions=True),
    lambda doc, row: row.update(n_versions=-1),
    lambda doc, row: row.update(name={"__class__": "os.system"}),
    lambda doc, row: row.update(aliases=["production"]),
    lambda doc, row: row.update(aliases={"production": 1}),
    lambda doc, row: row.update(updated="yesterday"),
    lambda doc, row: row.update(updated="2026-01-01T00:00:00"),  # no offset
    lambda doc, row: row.update(updated=1_700_000_000),
    lambda doc, row: row.update(__reduce__="os.system"),  # a field too many
    lambda doc, row: row.pop("task"),  # a field too few
    lambda doc, row: doc.update(items={"houses": row}),
    lambda doc, row: doc.update(key=["versions", "houses"]),
    lambda doc, row: doc.update(format=doc["format"] + 1),
    lambda doc, row: doc.update(marker="0" * 24),
], ids=["count-text", "count-bool", "count-negative", "name-object", "aliases-list",
        "alias-number", "time-text", "time-naive", "time-number", "extra-field",
        "missing-field", "items-object", "other-key", "other-format", "other-marker"])
def test_a_forged_kept_listing_is_not_trusted(board, capsys, forge):
    expected = listed(capsys, board)
    doc = _kept(board)
    forge(doc, doc["items"][0])
    _listing_file(board).write_text(json.dumps(doc))
    assert quick.answer(["list", "--store", str(board)]) is None
    assert listed(capsys, board) == expected


def test_a_huge_kept_listing_is_read_as_data(board, capsys):
    doc = _kept(board)
    row = doc["items"][0]
    doc["items"] = [dict(row, name=f"m{i}", description="x") for i in range(3)]
    _listing_file(board).write_text(json.dumps(doc))  # a field too many in each row
    assert quick.answer(["list", "--store", str(board)]) is None
    doc["items"] = [dict(row, name="n" * 200_000)] * 50  # 10 MB of one long name
    _listing_file(board).write_text(json.dumps(doc))
    code, out = quick_output(capsys, "list", "--store", str(board))
    assert code == 0 and out.count("n" * 200_000) == 50  # printed as text, nothing run


@pytest.mark.process
def test_a_fresh_process_lists_without_loading_the_store(board):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = ("import runpy, sys; sys.argv = ['core', 'list', '--store', sys.argv[1]]\n"
            "try:\n    runpy.run_module('core', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print(sorted(m for m in sys.modules if m.startswith(('core.', 'duckdb'))),"
            " file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(board)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = done.stderr.strip().splitlines()[-1]
    assert "core.store.versionstore" not in loaded and "duckdb" not in loaded
    assert "core.cli.quick" in loaded
    assert "houses" in done.stdout and "production" in done.stdout
