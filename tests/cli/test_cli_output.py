"""What the command line prints: plain numbers and text that runs nowhere."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import write_log
from sklearn.linear_model import LinearRegression

from core import bundle
from core.cli.main import main
from core.cli.output import escape_formula, exact_number, plain_number, table_text, visible
from core.monitoring.actuals import save_actuals
from core.store.versionstore import VersionStore

T0 = pd.Timestamp("2025-03-03", tz="UTC")
FORMULA = '=HYPERLINK("http://evil.example","click")'


@pytest.mark.parametrize("x,plain,exact", [
    (16290.123, "16290", "16290.123"), (0.71349, "0.7135", "0.71349"),
    (9.3e-05, "0.000093", "0.000093"), (1e-9, "0", "0.000000001"), (-3.5, "-3.5", "-3.5"),
    (1e20, "100000000000000000000", "100000000000000000000"), (0.0, "0", "0"),
    (-1e-12, "0", "-0.000000000001"), (float("nan"), "", ""), (float("inf"), "inf", "inf"),
    (2.0, "2", "2"),
])
def test_numbers_are_plain(x, plain, exact):
    assert plain_number(x) == plain and exact_number(x) == exact
    if exact not in ("", "inf"):
        assert float(exact) == x  # exact reads back the same float


def test_formulas_and_control_characters():
    for cell in ("=1+2", "+1", "-x", "@SUM(A1)", "\tx", "\rx"):
        assert escape_formula(cell) == "'" + cell
    for cell in ("a=1", "1-2", "", "ключ", "'=already"):
        assert escape_formula(cell) == cell
    assert visible("a\nb\x1b[31m\x00\x9b") == "a\\nb\\x1b[31m\\x00\\x9b"
    assert table_text("=1\n") == "'=1\\n"


@pytest.fixture(scope="module")
def formula_board(tmp_path_factory):
    """A real model fitted on a frame whose column is named like a spreadsheet formula."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({FORMULA: rng.normal(1e4, 3e3, 400), "b": rng.normal(0, 1, 400)})
    y = 3 * x[FORMULA] + 1e5
    model = LinearRegression().fit(x, y)
    store = VersionStore(str(tmp_path_factory.mktemp("formula") / "board"))
    b = bundle(model, x, name="f")
    store.write(b)
    logged = write_log(store, b, x.iloc[:80] * 1.5,
                       [T0 + pd.Timedelta(hours=i) for i in range(80)])
    truth = logged.assign(y=y.iloc[:80].to_numpy())
    save_actuals(store, "f", truth, key_column="request_id", actual_column="y")
    rmse = float(np.sqrt(np.mean((truth["prediction"] - truth["y"]) ** 2)))
    return store.url, rmse


def test_drift_csv_escapes_formula_names(formula_board, capsys):
    assert main(["monitor", "f", "--window", "week", "--format", "csv", "--what", "drift",
                 "--store", formula_board[0]]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert "'" + FORMULA in {r["column"] for r in rows}
    assert all(not v.startswith(("=", "+", "@")) for r in rows for v in r.values())
    numbers = [v for r in rows for k, v in r.items() if k not in ("judged_on", "note")]
    assert not [v for v in numbers if re.search(r"\d[eE][+-]?\d", v)]  # no exponents
    assert any(re.fullmatch(r"0\.0000\d+", v) for v in numbers)  # small p-values, plain


def test_table_prints_plain_numbers_and_escapes(formula_board, capsys):
    board, rmse = formula_board
    assert rmse > 1000
    assert main(["monitor", "f", "--window", "week", "--store", board]) == 0
    out = capsys.readouterr().out
    assert "'" + FORMULA in out and "\n" + FORMULA not in out
    metrics = out.split("== metrics ==")[1].split("== drift")[0]
    assert f" {plain_number(rmse)} " in metrics  # rmse in the thousands, in digits
    assert not re.search(r"\d[eE][+-]?\d", metrics)
    # JSON is for programs: names as they are
    assert main(["monitor", "f", "--window", "week", "--format", "json", "--what", "drift",
                 "--store", board]) == 0
    drift = json.loads(capsys.readouterr().out)["drift"]
    assert FORMULA in {r["column"] for r in drift}
