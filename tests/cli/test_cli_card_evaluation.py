"""``python -m core card`` with results per segment and the example call's endpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from monitor_helpers import write_log

from core.cli.main import main
from core.model.bundle import bundle
from core.monitoring.actuals import save_actuals
from core.store.versionstore import VersionStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data):
    folder = tmp_path_factory.mktemp("cli-card-eval")
    store = VersionStore(str(folder / "board"))
    features = house_data.drop(columns="price")
    b = bundle(house_model, features, name="house", metrics={"rmse": 1.0},
               metrics_data="test split", metrics_rows=160)
    store.write(b)
    logged = write_log(store, b, features.head(12), [pd.Timestamp("2025-03-03", tz="UTC")] * 12)
    logged["price"] = house_data["price"].head(12).to_numpy()
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    return folder


def test_card_with_segment_and_endpoint_in_a_subprocess(board):
    out = board / "card.html"
    done = subprocess.run(
        [sys.executable, "-m", "core", "card", "house", "--segment", "zipcode", "--endpoint",
         "https://models.example.com/house/", "--out", str(out), "--store",
         str(board / "board")],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=120)
    assert done.returncode == 0, done.stderr
    html = out.read_text()
    assert "test split (160 rows)" in html and "(12 rows of 12 predictions)" in html
    assert "where zipcode = " in html
    assert "curl -X POST https://models.example.com/house/predict" in html


@pytest.mark.parametrize("flags, message", [
    (["--segment", "price"], "is not an input of house"),
    (["--segment", "zipcode'; DROP TABLE x; --"], "is not an input of house"),
    (["--endpoint", "javascript:alert(1)"], "--endpoint must be a plain http(s) address"),
    (["--endpoint", "http://x/'; rm -rf ~"], "--endpoint must be a plain http(s) address"),
    (["--endpoint", "http://x/?a=1"], "--endpoint must be a plain http(s) address"),
])
def test_hostile_segment_and_endpoint_are_refused(board, capsys, flags, message):
    code = main(["card", "house", *flags, "--out", "-", "--store", str(board / "board")])
    _, err = capsys.readouterr()
    assert code == 1 and message in err
