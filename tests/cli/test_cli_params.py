"""Parameters and lineage on the command line: write, show and search, in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from sklearn.ensemble import RandomForestRegressor

import core
from core.cli.main import main
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]


def cli(*argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "core", *argv], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=120)


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data):
    folder = tmp_path_factory.mktemp("cli-params")
    joblib.dump(house_model, folder / "model.joblib")
    house_data.to_csv(folder / "train.csv", index=False)
    store = VersionStore(folder / "board")
    features = house_data.drop(columns=["price", "zipcode"]).head(200)
    old = core.bundle(RandomForestRegressor(n_estimators=3, random_state=0).fit(
        features, house_data["price"].head(200)), features, name="old")
    old.meta.lineage = None  # written before parameters were recorded
    store.write(old)
    return folder


def test_write_records_lineage_and_show_prints_it(board):
    done = cli("write", str(board / "model.joblib"), "--name", "houses", "--sample",
               str(board / "train.csv"), "--training-data", str(board / "train.csv"),
               "--training-code", "https://git.example/houses@3f2c1ab", "--metric",
               "rmse=41000", "--metrics-data", "holdout 2026-Q1", "--metrics-rows", "400",
               "--store", str(board / "board"), "--json")
    assert done.returncode == 0, done.stderr
    shown = cli("show", "houses", "--json", "--store", str(board / "board"))
    data = json.loads(shown.stdout)
    lineage = data["lineage"]
    assert lineage["params"]["forest__n_estimators"] == 10
    assert lineage["structure"].startswith("Pipeline(ColumnTransformer(")
    assert lineage["training_data"]["rows"] == 800 and lineage["training_data"]["columns"] == 7
    assert lineage["training_code"] == "https://git.example/houses@3f2c1ab"
    assert data["metrics_data"] == {"name": "holdout 2026-Q1", "rows": 400}

    text = cli("show", "houses", "--store", str(board / "board")).stdout
    assert "Pipeline(ColumnTransformer(OneHotEncoder, passthrough) → RandomForestRegressor)" \
        in text
    assert "forest__n_estimators = 10" in text and "prep/zip" in text
    assert "holdout 2026-Q1 (400 rows)" in text


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_says_not_recorded_for_old_versions(board, capsys):
    text = run(capsys, "show", "old", "--store", str(board / "board"))[1]
    assert "parameters:   not recorded" in text and "training code: not recorded" in text
    assert json.loads(run(capsys, "show", "old", "--json", "--store", str(board / "board"))[1]
                      )["lineage"] is None


def test_search_by_parameter_and_hostile_input(board, capsys):
    store = str(board / "board")
    found = cli("search", "--param", "n_estimators=10", "--json", "--store", store)
    assert found.returncode == 0, found.stderr
    assert [v["name"] for v in json.loads(found.stdout)] == ["houses"]
    missing = cli("search", "--param", "n_estimators", "--store", store)
    assert missing.returncode != 0
    assert missing.stderr.startswith("error: A parameter search is KEY=VALUE")
    assert "Traceback" not in missing.stderr
    code, out, _ = run(capsys, "search", "--param", "forest__n_estimators=10.0", "--json",
                       "--store", store)
    assert [v["name"] for v in json.loads(out)] == ["houses"]
    code, out, _ = run(capsys, "search", "--param", "n_estimators=10' OR '1'='1", "--store",
                       store)
    assert code == 0 and "No version matches" in out
    code, _, err = run(capsys, "search", "--param", "n_estimators=" + "9" * 50_000, "--store",
                       store)
    assert code != 0 and "at most 1000" in err


def test_write_refuses_two_sources_of_training_data(board, capsys):
    code, _, err = run(capsys, "write", str(board / "model.joblib"), "--name", "houses",
                       "--training-data", str(board / "train.csv"), "--training-fingerprint",
                       "abc", "--store", str(board / "board"))
    assert code != 0 and "not both" in err
    code, _, err = run(capsys, "write", str(board / "model.joblib"), "--name", "houses",
                       "--training-code", "a\u0007b", "--store", str(board / "board"))
    assert code != 0 and "training_code must be one line" in err
    assert len(VersionStore(board / "board").versions("houses")) == 1  # nothing written
