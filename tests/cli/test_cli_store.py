"""The store's command line: every command on a real board, and every failure as one line."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import pytest

from core.cli.main import main
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def files(tmp_path, house_model, house_data):
    joblib.dump(house_model, tmp_path / "model.joblib")
    house_data.to_csv(tmp_path / "sample.csv", index=False)
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_write_list_show_alias_history(files, capsys):
    board = str(files / "board")
    code, out, _ = run(capsys, "write", str(files / "model.joblib"), "--name", "houses",
                       "--sample", str(files / "sample.csv"), "--metric", "rmse=41000",
                       "--tag", "demo", "--description", "first", "--store", board)
    assert code == 0 and out.startswith("stored houses@")
    version = out.split("@")[1].strip()
    code, out, _ = run(capsys, "list", "--json", "--store", board)
    (model,) = json.loads(out)
    assert (model["name"], model["latest"], model["n_versions"]) == ("houses", version, 1)

    code, out, _ = run(capsys, "show", f"houses@{version}", "--store", board)
    assert "zipcode" in out and "category" in out and "rmse=41000" in out
    lo, hi = sample_range(files, "bedrooms")  # an integer column: "1 to 10", not "1.0 to 10.0"
    assert f"{lo} to {hi}" in next(line for line in out.splitlines() if "bedrooms" in line)

    assert run(capsys, "alias", "houses", version, "production", "--store", board)[0] == 0
    code, out, _ = run(capsys, "show", "houses:production", "--json", "--store", board)
    shown = json.loads(out)
    assert shown["version"] == version and shown["aliases"] == ["production"]
    assert shown["profile"]["columns"]["sqft_living"]["type"] == "numeric"

    code, out, _ = run(capsys, "history", "houses", "--json", "--store", board)
    (event,) = json.loads(out)
    assert (event["alias"], event["to_version"]) == ("production", version)

    code, out, _ = run(capsys, "search", "--metric", "rmse", "--max", "50000", "--json",
                       "--store", board)
    assert [v["version"] for v in json.loads(out)] == [version]
    code, out, _ = run(capsys, "search", "--metric", "rmse", "--max", "100", "--json",
                       "--store", board)
    assert json.loads(out) == []
    code, out, _ = run(capsys, "search", "--metric", "rmse", "--max", "100", "--store", board)
    assert code == 0 and out.startswith("No version matches every condition")


def sample_range(files: Path, column: str) -> tuple[int, int]:
    import pandas as pd

    values = pd.read_csv(files / "sample.csv")[column]
    return int(values.min()), int(values.max())


def test_delete_prune_verify_reindex(files, capsys, house_model):
    board = str(files / "board")
    store = VersionStore(board)
    import core

    versions = [store.write(core.bundle(house_model, name="houses")).version for _ in range(4)]
    store.set_alias("houses", "production", versions[0])

    code, _, err = run(capsys, "delete", f"houses@{versions[0]}", "--store", board)
    assert code == 1 and "production" in err and err.count("\n") == 1
    code, out, _ = run(capsys, "delete", f"houses@{versions[1]}", "--store", board)
    assert code == 0 and versions[1] in out

    code, out, _ = run(capsys, "prune", "houses", "--keep", "1", "--store", board)
    assert code == 0 and "pruned 1 version(s)" in out
    assert [v.version for v in store.versions("houses")] == [versions[0], versions[3]]

    assert run(capsys, "verify", "--store", board)[0] == 0
    assert run(capsys, "reindex", "--store", board)[0] == 0

    # corrupt the model file: verify names it and exits non-zero
    model_file = next(Path(board, "houses", versions[3]).glob("*.joblib"))
    model_file.write_bytes(model_file.read_bytes()[:-10] + b"0123456789")
    code, out, err = run(capsys, "verify", "--store", board)
    assert code == 1 and "1 problem(s) found" in out
    assert err.startswith(f"error: houses/{versions[3]}/houses.joblib is corrupt")
    assert err.count("\n") == 1


def test_list_on_empty_store_says_what_to_do(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "list", "--store", str(tmp_path / "empty"))
    assert code == 0 and "python -m core write MODEL_FILE" in err


@pytest.mark.parametrize("argv", [
    ["list"], ["versions", "houses"], ["show", "houses"], ["search", "--text", "h"],
    ["history", "houses"], ["verify"], ["reindex"], ["monitor-status"], ["card", "houses"],
    ["endpoints", "list"],
])
def test_a_mistyped_store_path_is_an_error_not_a_new_store(tmp_path, capsys, argv):
    typo = tmp_path / "stroe"
    code, out, err = run(capsys, *argv, "--store", str(typo))
    assert code == 1 and out == ""
    assert err == (f"error: There is no store at {typo}. Check --store or FIXATIVE_STORE; "
                   "'python -m core write MODEL_FILE --name NAME' creates one.\n")
    assert not typo.exists()


def test_an_empty_store_argument_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "list", "--store", " ")
    assert code == 1 and "--store is empty" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["show", "../etc"], "not allowed"),
    (["show", ""], "empty"),
    (["show", "houses\x00"], "not allowed"),
    (["show", "houses"], "No model 'houses'"),
    (["versions", "a" * 5000], "use at most 128"),
    (["prune", "houses"], "--keep N"),
    (["write", "missing.pkl", "--name", "x"], "does not exist"),
    (["write", ".", "--name", "x"], "is a folder"),
    (["write", "model.joblib", "--name", "../../x"], "not allowed"),
    (["write", "model.joblib", "--name", "x", "--metric", "rmse"], "KEY=VALUE"),
    (["write", "model.joblib", "--name", "x", "--metric", "rmse=high"], "must be a number"),
    (["write", "model.joblib", "--name", "x", "--sample", "empty.csv"], "empty"),
    (["write", "notes.pkl", "--name", "x"], "not"),
    (["write", "zero.pkl", "--name", "x"], "empty"),
    (["write", "model.joblib", "--name", "x", "--metric", "a=1", "--metric", "a=2"],
     "--metric a is given twice ('1' and '2'); give each metric once."),
    (["write", "model.joblib", "--name", "x", "--tag", "a,b"], "cannot contain a comma"),
    (["search", "--min", "0.5"], "--min/--max need --metric to compare, e.g. --metric rmse"),
    (["search", "--after", "yesterday"], "--after must be a date or time"),
    (["search", "--after", "2025-02-01", "--before", "2025-01-01"],
     "--after (2025-02-01T00:00:00.000000Z) must be earlier than --before"),
    (["search", "--metric", "r", "--min", "2", "--max", "1"], "--min (2.0) is larger than --max"),
    (["prune", "houses", "--days", "inf"], "No model 'houses'"),
])
def test_failures_are_one_clear_line(files, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(files)
    (files / "empty.csv").write_bytes(b"")
    (files / "notes.pkl").write_text("just some text, not a pickle\n")
    (files / "zero.pkl").write_bytes(b"")
    (files / "board").mkdir(exist_ok=True)
    code, out, err = run(capsys, *argv, "--store", str(files / "board"))
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err
    # nothing was stored by a failed write
    assert VersionStore(str(files / "board")).list_models() == []


def test_hostile_pickle_is_refused_and_does_not_run(files, capsys, monkeypatch):
    marker = files / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (files / "evil.pkl").write_bytes(pickle.dumps(Payload()))
    code, _, err = run(capsys, "write", str(files / "evil.pkl"), "--name", "evil",
                       "--store", str(files / "board"))
    assert code == 1 and "would run posix.system" in err and "cannot be trusted" in err
    assert not marker.exists()
    # naming it as trusted changes nothing
    code, _, err = run(capsys, "write", str(files / "evil.pkl"), "--name", "evil",
                       "--trust", "posix.system", "--store", str(files / "board"))
    assert code == 1 and "cannot be trusted" in err
    assert not marker.exists()
    assert VersionStore(str(files / "board")).list_models() == []


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["prune", "houses", "--keep", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_runs_as_a_module(files):
    env = os.environ | {"PYTHONPATH": str(ROOT), "FIXATIVE_STORE": str(files / "board")}
    (files / "board").mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "core", "show", "nothing"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: No model 'nothing'")
    assert "Traceback" not in proc.stderr
