"""ModelBundle: what is captured from each kind of model the issue names."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

import core
from core.errors import InvalidArgument, InvalidInput
from core.model.bundle import BundleMeta
from core.model.profile import SAMPLE_ROWS


def test_pipeline_with_column_transformer(house_model, house_data):
    b = core.bundle(house_model, house_data, name="houses", description="d",
                    metrics={"rmse": 41000}, tags=["b", "a", "a"], user="ana")
    m = b.meta
    assert (m.model_class, m.library, m.task) == ("Pipeline", "sklearn", "regression")
    assert m.classes is None and m.has_proba is False
    # the target column of the sample is dropped: the model was not fitted on it
    assert b.prototype.names == list(house_model.feature_names_in_)
    assert b.prototype.column("zipcode").kind == "category"
    assert b.prototype.column("bedrooms").kind == "int"
    assert m.metrics == {"rmse": 41000.0} and m.tags == ["a", "b"] and m.user == "ana"
    assert m.environment["packages"]["scikit-learn"]
    assert m.environment["python_version"][0] == 3
    assert m.created.endswith("Z")
    features = house_data.drop(columns="price").head(5)
    np.testing.assert_allclose(b.predict(features), house_model.predict(features))


def test_reference_profile(house_model, house_data):
    b = core.bundle(house_model, house_data, name="houses")
    prof = b.meta.profile
    assert prof["n_rows"] == len(house_data)
    sqft = prof["columns"]["sqft_living"]
    assert sqft["type"] == "numeric" and sum(sqft["counts"]) == len(house_data)
    assert sqft["min"] == house_data.sqft_living.min()
    z = prof["columns"]["zipcode"]
    assert z["type"] == "categorical"
    assert z["frequencies"] == house_data.zipcode.value_counts().to_dict()
    assert prof["prediction"]["type"] == "numeric"
    assert "price" not in prof["columns"]
    # an integer column with few values gets a bin per value, each with its own count
    bedrooms = prof["columns"]["bedrooms"]
    values = house_data.bedrooms.value_counts().sort_index()
    assert bedrooms["edges"][:-1] == values.index.astype(float).tolist()
    assert bedrooms["counts"] == values.tolist()


def test_row_sample_is_bounded(house_model):
    big = core.model.examples.house_prices(SAMPLE_ROWS + 500, seed=3)
    b = core.bundle(house_model, big, name="houses")
    assert len(b.sample) == SAMPLE_ROWS
    assert b.meta.profile["n_rows"] == SAMPLE_ROWS + 500


def test_binary_classifier(churn_model, churn_data):
    b = core.bundle(churn_model, churn_data, name="churn")
    assert b.meta.task == "binary" and b.meta.classes == ["no", "yes"] and b.meta.has_proba
    proba = b.predict_proba(churn_data.drop(columns="churned").head(3))
    assert proba.shape == (3, 2)
    assert b.meta.profile["prediction"]["type"] == "categorical"


def test_multiclass_classifier():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    y = np.select([X.a > 0.5, X.a < -0.5], ["hi", "lo"], "mid")
    m = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    b = core.bundle(m, X, name="multi")
    assert b.meta.task == "multiclass" and b.meta.classes == ["hi", "lo", "mid"]
    assert b.meta.model_class == "RandomForestClassifier"


def test_bare_regressor_on_numeric_array_without_sample():
    X = np.random.default_rng(0).normal(size=(50, 3))
    m = LinearRegression().fit(X, X @ [1.0, 2.0, 3.0])
    b = core.bundle(m, name="lin")
    assert b.prototype.source == "n_features" and not b.prototype.named
    assert b.prototype.names == ["x0", "x1", "x2"]
    assert any("No training sample" in n for n in b.meta.notes)
    assert b.meta.profile is None
    np.testing.assert_allclose(b.predict([[1, 1, 1]]), [6.0])


def test_bare_regressor_on_array_with_array_sample():
    X = np.random.default_rng(0).normal(size=(50, 2))
    m = LinearRegression().fit(X, X @ [1.0, 1.0])
    b = core.bundle(m, X, name="lin")
    assert not b.prototype.named and b.prototype.column("x0").kind == "float"
    np.testing.assert_allclose(b.predict([{"x0": 1.0, "x1": 2.0}]), [3.0])


def test_hist_gradient_boosting_with_categorical_features():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"size": rng.normal(size=400),
                      "color": pd.Categorical(rng.choice(["red", "blue", "green"], 400))})
    y = X["size"] * 2 + (X["color"] == "red") * 3
    m = HistGradientBoostingRegressor(categorical_features="from_dtype", max_iter=20).fit(X, y)
    b = core.bundle(m, X, name="hgb")
    assert b.prototype.column("color").kind == "category"
    assert b.prototype.accepts_nulls
    pred = b.predict([{"size": 0.1, "color": "red"}, {"size": None, "color": "blue"}])
    expected = m.predict(pd.DataFrame({"size": [0.1, np.nan],
                                       "color": pd.Categorical(["red", "blue"],
                                                               categories=["blue", "green",
                                                                           "red"])}))
    np.testing.assert_allclose(pred, expected)


def test_feature_names_fallback():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 0.0]})
    m = LogisticRegression().fit(X, [0, 1, 0])
    b = core.bundle(m, name="names")
    assert b.prototype.source == "feature_names" and b.prototype.names == ["a", "b"]
    assert b.meta.classes == [0, 1]


def test_meta_round_trips_through_json(house_model, house_data):
    meta = core.bundle(house_model, house_data, name="houses", metrics={"r2": 0.9}).meta
    again = BundleMeta.from_dict(json.loads(json.dumps(meta.to_dict())))
    assert again.to_dict() == meta.to_dict()


def test_sample_missing_model_columns(house_model, house_data):
    with pytest.raises(InvalidArgument, match="lacks columns the model was fitted on: zipcode"):
        core.bundle(house_model, house_data.drop(columns="zipcode"), name="x")


def test_sample_that_the_model_cannot_use(house_model, house_data):
    wrong = house_data.assign(sqft_living="big")
    with pytest.raises(InvalidArgument, match="could not predict on the sample"):
        core.bundle(house_model, wrong.astype({"sqft_living": object}), name="x")


def test_empty_sample(house_model, house_data):
    with pytest.raises(InvalidArgument, match="sample is empty"):
        core.bundle(house_model, house_data.head(0), name="x")


def test_not_a_model():
    with pytest.raises(InvalidArgument, match="has no predict method"):
        core.bundle({"not": "a model"}, name="x")


def test_unfitted_model():
    with pytest.raises(InvalidArgument, match="is not fitted"):
        core.bundle(LinearRegression(), name="x")


@pytest.mark.parametrize("value", ["high", float("nan"), None])
def test_bad_metric_values(house_model, value):
    with pytest.raises(InvalidArgument, match="Metric 'rmse' must be"):
        core.bundle(house_model, name="x", metrics={"rmse": value})


def test_wrong_width_array_sample():
    X = np.zeros((10, 3))
    m = LinearRegression().fit(X, np.zeros(10))
    with pytest.raises(InvalidArgument, match="has 2 columns but the model was fitted on 3"):
        core.bundle(m, np.zeros((5, 2)), name="x")


def test_predict_proba_on_regressor(house_model):
    b = core.bundle(house_model, name="x")
    with pytest.raises(InvalidArgument, match="has no predict_proba"):
        b.predict_proba([{}])


def test_predict_validates(house_model, house_data):
    b = core.bundle(house_model, house_data, name="x")
    with pytest.raises(InvalidInput, match="column 'zipcode' is missing"):
        b.predict([{"bedrooms": 1}])
