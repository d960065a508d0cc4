"""Commands import only what they use: reading the store never loads the data stack.

Each command runs as ``python -m core`` does, in a fresh interpreter, on a real board
whose index is one version behind (so the command also brings the index up to date),
and the test then looks at ``sys.modules``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli.main import COMMANDS, EXTENSIONS, build_parser
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]
# Heavy libraries that listing, showing and searching versions must not import.
HEAVY = ("pandas", "sklearn", "pyarrow", "plotly", "scipy", "streamlit")

_RUN = """
import json, runpy, sys
sys.argv = ["core", *json.loads(sys.argv[1])]
try:
    runpy.run_module("core", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data):
    """A board with two versions and an alias, indexed, then a third version not yet in
    the index."""
    root = tmp_path_factory.mktemp("imports") / "board"
    store = VersionStore(root)
    first = store.write(bundle(house_model, house_data, name="houses", metrics={"rmse": 1.0},
                               tags=["demo"]))
    store.write(bundle(house_model, house_data, name="houses", metrics={"rmse": 2.0}))
    store.set_alias("houses", "production", first.version)
    latest = store.write(bundle(house_model, house_data, name="houses"))
    return root, first.version, latest.version


def run_command(board_dir: Path, *argv: str) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run([sys.executable, "-c", _RUN, json.dumps([*argv, "--store",
                                                                     str(board_dir)])],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return report, done.stdout


@pytest.mark.parametrize("argv", [
    ("list",),
    ("versions", "houses"),
    ("show", "houses:production"),
    ("history", "houses"),
    ("alias", "houses", "LATEST", "staging"),
    ("search", "--tag", "demo", "--metric", "rmse", "--max", "5"),
    ("versions", "houses", "--json"),
], ids=lambda argv: " ".join(argv))
def test_reading_commands_never_import_the_data_stack(board, tmp_path, argv):
    source, first, latest = board
    board_dir = tmp_path / "board"
    shutil.copytree(source, board_dir)  # each command finds the index one version behind
    argv = tuple(latest if a == "LATEST" else a for a in argv)
    report, out = run_command(board_dir, *argv)
    assert report["code"] == 0, out
    assert out.strip()  # the command did its work
    if argv[0] == "versions":
        assert first in out and latest in out  # the version the index lacked is listed
    loaded = sorted(m for m in report["modules"] if m.split(".")[0] in HEAVY)
    assert not loaded, f"'python -m core {' '.join(argv)}' imported {loaded[:10]}"


def test_commands_table_matches_what_the_modules_register():
    registered: dict[str, str] = {}
    for module in EXTENSIONS:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(sub)
        registered.update(dict.fromkeys(sub.choices, module))
    assert registered == COMMANDS
    for command, module in COMMANDS.items():
        # a command's own parser knows it, and only its module's commands
        choices = build_parser(command)._subparsers._group_actions[0].choices
        assert command in choices
        assert set(choices) == {c for c, m in COMMANDS.items() if m == module}


def test_help_and_unknown_words_still_list_every_command(capsys):
    with pytest.raises(SystemExit):
        build_parser(None).parse_args(["--help"])
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS)
    with pytest.raises(SystemExit) as exc:
        build_parser("nosuchcommand").parse_args(["nosuchcommand"])
    assert exc.value.code == 2
    assert "monitor-status" in capsys.readouterr().err  # argparse lists the choices


@pytest.mark.parametrize("argv", [("list",), ("versions", "houses")], ids=" ".join)
def test_a_listing_repeated_on_an_unchanged_board_needs_no_duckdb(board, tmp_path, argv):
    source, first, latest = board
    board_dir = tmp_path / "board"
    shutil.copytree(source, board_dir)
    report, out = run_command(board_dir, *argv)  # brings the index up to date
    assert report["code"] == 0 and "duckdb" in report["modules"]
    again, out_again = run_command(board_dir, *argv)
    assert again["code"] == 0 and out_again == out
    assert "duckdb" not in again["modules"]
