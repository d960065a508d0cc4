"""Upload logic: reading samples, metrics and tags, checking files, storing versions."""

from __future__ import annotations

import io
import os
import pickle
import re
from pathlib import Path

import joblib
import pandas as pd
import pytest

from core.errors import Conflict, InvalidArgument, InvalidModelFile, InvalidName, UnsafeModel
from core.store import upload as up
from core.store.versionstore import VersionStore

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
    with pytest.raises(InvalidArgument, match=message):
        up.read_sample(data, filename)


# -- metrics and tags ------------------------------------------------------------------


def test_metrics_from_rows_skips_blank_rows():
    rows = pd.DataFrame({"metric": ["rmse", None, " r2 ", ""], "value": [1.5, None, "0.8", None]})
    assert up.metrics_from_rows(rows) == {"rmse": 1.5, "r2": 0.8}
    assert up.metrics_from_rows(None) == {}
    assert up.metrics_from_rows(pd.DataFrame({"metric": [], "value": []})) == {}


@pytest.mark.parametrize("rows, message", [
    ([{"metric": "rmse", "value": None}], r"Metric 'rmse' has no value"),
    ([{"metric": None, "value": 3}], r"Metric row 1 has a value \(3\) but no name"),
    ([{"metric": "rmse", "value": "abc"}], r"Metric 'rmse' must be a number, got 'abc'"),
    ([{"metric": "rmse", "value": float("inf")}], r"Metric 'rmse' must be a finite number"),
    ([{"metric": "a", "value": 1}, {"metric": "a", "value": 2}], r"Metric 'a' is listed twice"),
])
def test_metrics_from_rows_errors(rows, message):
    with pytest.raises(InvalidArgument, match=message):
        up.metrics_from_rows(rows)


def test_parse_tags():
    assert up.parse_tags(" b, a,, b ,") == ["a", "b"]
    assert up.parse_tags(None) == []
    with pytest.raises(InvalidArgument, match=r"longer than 50 characters"):
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
    label = up.trust_label(["os.system", "builtins.eval", "safety_helpers.Unloaded"])
    # each name with what it is; a module not loaded yet is not imported to find out
    assert ("`os.system` (function in os), `builtins.eval` (function in builtins), "
            "`safety_helpers.Unloaded` (") in label
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


# -- storing ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def house_bytes(house_model) -> bytes:
    buf = io.BytesIO()
    joblib.dump(house_model, buf)
    return buf.getvalue()


@pytest.fixture
def store(tmp_path):
    return VersionStore(str(tmp_path / "store"))


class _Hostile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_text_columns(house_model, churn_model):
    assert up.text_columns(house_model) == {"zipcode"}
    assert up.text_columns(churn_model) == {"plan"}


def test_upload_with_csv_sample_keeps_zipcodes_as_text(store, house_bytes, house_data):
    # Zipcodes look like numbers in CSV; the encoder was fitted on strings.
    csv = house_data.head(300).to_csv(index=False).encode()
    steps = []
    info = up.upload(store, house_bytes, "house.joblib", name="houses", sample_data=csv,
                     sample_filename="train.csv", description="d", metrics={"rmse": 1.0},
                     tags=["t"], progress=lambda f, text: steps.append((f, text)))
    assert info.name == "houses" and info.metrics == {"rmse": 1.0}
    meta = store.meta("houses", info.version)
    assert meta.prototype.column("zipcode").kind == "category"
    assert "98001" in meta.prototype.column("zipcode").categories
    assert "price" not in meta.prototype.names  # the target column is dropped
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and steps[-1][0] == 1.0
    assert steps[-1][1] == f"Stored houses@{info.version}"


def test_upload_with_parquet_sample(store, house_bytes, house_data):
    buf = io.BytesIO()
    house_data.head(100).drop(columns=["price"]).to_parquet(buf)
    info = up.upload(store, house_bytes, "house.pkl", name="houses",
                     sample_data=buf.getvalue(), sample_filename="train.parquet")
    assert store.sample("houses", info.version) is not None


def test_upload_skops_file(store, churn_model):
    import skops.io as sio

    info = up.upload(store, sio.dumps(churn_model), "churn.skops", name="churn-skops")
    assert store.meta("churn-skops", info.version).task == "binary"


def test_hostile_pickle_is_never_loaded(store, tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Hostile(marker))
    report = up.scan_model(data, "evil.pkl")
    assert not report.ok and any("system" in g for g in report.untrusted)
    with pytest.raises(UnsafeModel, match=r"system"):
        up.upload(store, data, "evil.pkl", name="evil")
    # Trusting something else does not help.
    with pytest.raises(UnsafeModel):
        up.upload(store, data, "evil.pkl", name="evil", trusted=["os.getcwd"])
    assert not marker.exists()
    assert store.list_models() == []


def test_wrong_inputs_store_nothing(store, house_bytes):
    with pytest.raises(InvalidName, match=r"not allowed"):
        up.upload(store, house_bytes, "house.joblib", name="no/way")
    with pytest.raises(InvalidModelFile, match=r"empty \(0 bytes\)"):
        up.upload(store, b"", "house.joblib", name="houses")
    with pytest.raises(InvalidArgument, match=r"has a header but no rows"):
        up.upload(store, house_bytes, "house.joblib", name="houses", sample_data=b"a,b\n",
                  sample_filename="s.csv")
    with pytest.raises(InvalidArgument, match=r"lacks columns the model was fitted on"):
        up.upload(store, house_bytes, "house.joblib", name="houses", sample_data=b"a,b\n1,2\n",
                  sample_filename="s.csv")
    with pytest.raises(InvalidArgument, match=r"dict has no predict method"):
        up.upload(store, pickle.dumps({"a": 1}), "d.pkl", name="houses")
    assert store.list_models() == []


def test_name_taken_by_another_kind(store, house_bytes, churn_model):
    up.upload(store, house_bytes, "house.joblib", name="houses")
    buf = io.BytesIO()
    joblib.dump(churn_model, buf)
    with pytest.raises(Conflict, match=r"'houses' already holds Pipeline \(regression\) models, "
                                       r"but this file is Pipeline \(binary\).*'houses-binary'"):
        up.upload(store, buf.getvalue(), "churn.joblib", name="houses")
    assert len(store.versions("houses")) == 1
    # The same kind adds a version.
    up.upload(store, house_bytes, "house.joblib", name="houses")
    assert len(store.versions("houses")) == 2
