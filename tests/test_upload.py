"""Upload logic: reading samples, metrics and tags, checking files, storing versions."""

from __future__ import annotations

import io
import re
import pickle

import joblib
import pandas as pd
import pytest

from core import upload as up
from core.errors import BadRequest, Conflict, InvalidModelFile, InvalidName, UnsafeModel

# -- samples ---------------------------------------------------------------------------


def test_read_csv_and_parquet(house_data):
    csv = house_data.head(50).to_csv(index=False).encode()
    frame = up.read_sample(csv, "train.csv")
    assert list(frame.columns) == list(house_data.columns) and len(frame) == 50
    buf = io.BytesIO()
    house_data.head(20).to_parquet(buf)
    frame = up.read_sample(buf.getvalue(), "train.PARQUET")
    assert len(frame) == 20 and frame["zipcode"].tolist() == house_data["zipcode"][:20].tolist()


@pytest.mark.parametrize("data, filename, message", [
    (b"", "s.csv", r"'s.csv' is empty \(0 bytes\)"),
    (b"\n\n", "s.csv", r"'s.csv' has no columns"),
    (b"a,b,c\n", "s.csv", r"'s.csv' has a header but no rows"),
    (b"a,b\n1,2\n", "s.xlsx", r"'s.xlsx' is neither CSV nor Parquet"),
    (b"PAR1 not really", "s.parquet", r"'s.parquet' cannot be read as Parquet"),
    (b'a,b\n1,"2\n', "s.csv", r"'s.csv' cannot be read as CSV"),
    (b"\xff\xfe\x00bad", "s.csv", r"cannot be read as CSV|has no columns"),
])
def test_bad_samples(data, filename, message):
    with pytest.raises(BadRequest, match=message):
        up.read_sample(data, filename)


# -- metrics and tags ------------------------------------------------------------------


def test_parse_metrics_skips_blank_rows():
    rows = pd.DataFrame({"metric": ["rmse", None, " r2 ", ""], "value": [1.5, None, "0.8", None]})
    assert up.parse_metrics(rows) == {"rmse": 1.5, "r2": 0.8}
    assert up.parse_metrics(None) == {}
    assert up.parse_metrics(pd.DataFrame({"metric": [], "value": []})) == {}


@pytest.mark.parametrize("rows, message", [
    ([{"metric": "rmse", "value": None}], r"Metric 'rmse' has no value"),
    ([{"metric": None, "value": 3}], r"Metric row 1 has a value \(3\) but no name"),
    ([{"metric": "rmse", "value": "abc"}], r"Metric 'rmse' must be a number, got 'abc'"),
    ([{"metric": "rmse", "value": float("inf")}], r"Metric 'rmse' must be a finite number"),
    ([{"metric": "a", "value": 1}, {"metric": "a", "value": 2}], r"Metric 'a' is listed twice"),
])
def test_parse_metrics_errors(rows, message):
    with pytest.raises(BadRequest, match=message):
        up.parse_metrics(rows)


def test_parse_tags():
    assert up.parse_tags(" b, a,, b ,") == ["a", "b"]
    assert up.parse_tags(None) == []
    with pytest.raises(BadRequest, match=r"longer than 50 characters"):
        up.parse_tags("x" * 51)


def test_suggest_name():
    assert up.suggest_name("House Model v2.pkl") == "house-model-v2"
    assert up.suggest_name("--.joblib") == "model"
    assert up.suggest_name("Über Modell (final).skops") == "uber-modell-final"


# -- model files -----------------------------------------------------------------------


def test_check_model_file():
    with pytest.raises(InvalidModelFile, match=r"'m.pkl' is empty \(0 bytes\)"):
        up.check_model_file(b"", "m.pkl")
    with pytest.raises(InvalidModelFile, match=r"'m.txt' is not a model file .* \.joblib"):
        up.check_model_file(b"data", "m.txt")
    up.check_model_file(b"data", "M.JOBLIB")


def test_trust_label_names_exactly_the_imports():
    label = up.trust_label(["os.system", "builtins.eval"])
    assert "`os.system`, `builtins.eval`" in label
    assert "runs that code on this server" in label


@pytest.mark.parametrize("name, message", [
    ("", r"Give the model a name"),
    ("   ", r"Give the model a name"),
    ("../etc", r"not allowed: it contains '/'"),
    ("a b", r"not allowed: it contains ' '"),
    (".fixative", r"reserved"),
    ("x" * 129, r"129 characters long"),
])
def test_name_problem(name, message):
    assert re.search(message, up.name_problem(name))


def test_good_names():
    for name in ("house-prices", "m1", "A.b_c-2"):
        assert up.name_problem(name) is None
