"""Parameters and lineage recorded at bundle time, from real scikit-learn models."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import core
from core.errors import InvalidArgument
from core.model import params
from core.model.bundle import BundleMeta
from core.model.compare import compare


def _log1p_of_price(x):  # a callable parameter: recorded by its qualified name
    return np.log1p(x)


@pytest.fixture(scope="module")
def pipeline(house_data):
    features = house_data.drop(columns="price")
    numeric = [c for c in features.columns if c != "zipcode"]
    model = Pipeline([
        ("prep", ColumnTransformer([
            ("zip", OneHotEncoder(handle_unknown="ignore"), ["zipcode"]),
            ("num", Pipeline([("log", FunctionTransformer(_log1p_of_price)),
                              ("scale", StandardScaler())]), numeric),
        ])),
        ("forest", RandomForestRegressor(n_estimators=7, max_depth=4, random_state=0)),
    ])
    return model.fit(features, house_data["price"])


def test_parameters_are_flattened_and_json_safe(pipeline, house_data):
    meta = core.bundle(pipeline, house_data, name="houses").meta
    recorded = meta.lineage["params"]
    assert recorded["forest__n_estimators"] == 7 and recorded["forest__max_depth"] == 4
    assert recorded["forest__bootstrap"] is True and recorded["memory"] is None
    assert recorded["prep__zip__handle_unknown"] == "ignore"
    # estimators by class path, callables by qualified name, numpy types by their path
    assert recorded["forest"] == "sklearn.ensemble._forest.RandomForestRegressor"
    assert recorded["prep__num__log__func"].endswith("test_params._log1p_of_price")
    assert recorded["prep__zip__dtype"] == "numpy.float64"
    json.dumps(meta.to_dict(), allow_nan=False)  # JSON as it is, no NaN, no objects
    assert BundleMeta.from_dict(json.loads(json.dumps(meta.to_dict()))).lineage == meta.lineage


def test_steps_and_structure_include_column_transformer_branches(pipeline):
    recorded = params.lineage(pipeline)
    paths = {s["path"]: s["class"] for s in recorded["steps"]}
    assert paths["prep"] == "sklearn.compose._column_transformer.ColumnTransformer"
    assert paths["prep/zip"].endswith("OneHotEncoder")
    assert paths["prep/num/scale"] == "sklearn.preprocessing._data.StandardScaler"
    assert paths["forest"].endswith("RandomForestRegressor")
    assert "forest/estimator" not in paths  # a forest's tree template is no step
    assert recorded["structure"] == ("Pipeline(ColumnTransformer(OneHotEncoder, "
                                     "Pipeline(FunctionTransformer → StandardScaler)) → "
                                     "RandomForestRegressor)")


def test_model_summary_reads_the_pipeline(house_model, house_data):
    meta = core.bundle(house_model, house_data, name="houses").meta
    assert meta.model_class == "Pipeline"  # the pins title keeps the bare class
    assert meta.model_summary == ("Pipeline(ColumnTransformer(OneHotEncoder, passthrough) → "
                                  "RandomForestRegressor)")
    assert BundleMeta.from_dict({"name": "x", "model_class": "Ridge"}).model_summary == "Ridge"


def test_long_hostile_and_odd_values_are_cut_with_a_marker():
    long = "<script>alert(1)</script>" + "x" * 5000
    assert params.safe_value(long).endswith(params.TRUNCATED)
    assert len(params.safe_value(long)) == params.MAX_VALUE_CHARS
    assert params.safe_value(float("nan")) == "nan"
    assert params.safe_value(np.int64(3)) == 3 and params.safe_value(np.float32(0.5)) == 0.5
    assert params.safe_value(2**70) == str(2**70)  # beyond what JSON readers keep exactly
    big = params.safe_value(np.arange(10_000))
    assert big == "array of shape (10000,) (int64)"
    listed = params.safe_value(list(range(1000)))
    assert isinstance(listed, str) and listed.endswith(params.TRUNCATED)
    assert params.safe_value({"a": [1, 2]}) == {"a": [1, 2]}


def test_training_data_fingerprint_is_stable_and_sensitive(house_data):
    one = params.fingerprint(house_data)
    assert one == params.fingerprint(house_data.copy())
    assert (one["rows"], one["columns"]) == house_data.shape
    changed = house_data.copy()
    changed.loc[0, "price"] += 1
    assert params.fingerprint(changed)["sha256"] != one["sha256"]
    renamed = house_data.rename(columns={"price": "cost"})
    assert params.fingerprint(renamed)["sha256"] != one["sha256"]
    assert params.fingerprint("sha256:abc") == {"fingerprint": "sha256:abc"}


@pytest.mark.parametrize("bad", ["", "a\nb", "x" * 501, 7])
def test_bad_training_code_is_refused(house_model, bad):
    with pytest.raises(InvalidArgument, match="training_code must be one line"):
        core.bundle(house_model, name="houses", training_code=bad)


@pytest.mark.parametrize("bad", ["", "a\x00b", "x" * 501])
def test_bad_fingerprint_is_refused(house_model, bad):
    with pytest.raises(InvalidArgument, match="fingerprint must be one line"):
        core.bundle(house_model, name="houses", training_data=bad)


def test_training_data_must_be_a_frame_or_text(house_model):
    with pytest.raises(InvalidArgument, match="DataFrame or a fingerprint"):
        core.bundle(house_model, name="houses", training_data=[1, 2, 3])


def test_metrics_data_names_the_data_set(house_model):
    meta = core.bundle(house_model, name="h", metrics={"rmse": 1.0},
                       metrics_data="holdout 2026-Q1", metrics_rows=4000).meta
    assert meta.metrics_data == {"name": "holdout 2026-Q1", "rows": 4000}
    with pytest.raises(InvalidArgument, match="metrics_rows must be a whole number"):
        core.bundle(house_model, name="h", metrics_data="x", metrics_rows=0)
    with pytest.raises(InvalidArgument, match="at most 100 characters"):
        core.bundle(house_model, name="h", metrics_data="x" * 101)


def test_compare_shows_only_changed_parameters_and_all_on_request(house_data):
    features, y = house_data.drop(columns="price"), house_data["price"]
    metas = []
    for trees in (100, 300):
        model = Pipeline([("scale", StandardScaler()),
                          ("forest", RandomForestRegressor(n_estimators=trees, max_depth=3,
                                                           random_state=0, n_jobs=1))])
        model.fit(features.drop(columns="zipcode").head(200), y.head(200))
        metas.append(core.bundle(model, name="houses").meta)
    diff = compare(*metas, "a", "b")
    assert [(c.field, c.old, c.new) for c in diff.params] == [
        ("forest__n_estimators", "100", "300")]
    assert len(diff.all_params) == len(metas[0].lineage["params"])
    assert "1 parameter(s) changed (forest__n_estimators)" in diff.summary()
    old = BundleMeta.from_dict({**metas[0].to_dict(), "lineage": None})
    one_sided = compare(old, metas[1])
    assert [(c.old, c.new) for c in one_sided.params] == [
        ("not recorded", f"{len(metas[1].lineage['params'])} recorded")]
    assert compare(old, old).params == [] and compare(old, old).all_params == []


def test_model_without_get_params_records_none():
    class Plain:
        n_features_in_ = 2

        def predict(self, x):
            return np.zeros(len(x))

    recorded = params.lineage(Plain())
    assert recorded["params"] == {} and recorded["steps"] == []
    assert recorded["structure"] == "Plain"
    assert core.bundle(Plain(), pd.DataFrame({"a": [1.0], "b": [2.0]}), name="p").meta.lineage


def test_params_diff_texts():
    assert params.params_diff({"a": 1}, {"a": "1"}) == []  # same text: not a change
    assert params.params_diff(None, {"a": 1}) == [("a", "not recorded", "1")]
    assert params.params_diff({"a": 1, "b": 2}, {"a": 1}) == [("b", "2", "—")]
