"""Differences between two versions' metadata, metrics, prototype and environment."""

from __future__ import annotations

import copy

import pytest

from core.model.bundle import bundle
from core.model.compare import compare, compare_environments, compare_prototypes
from core.model.prototype import Prototype


@pytest.fixture(scope="module")
def house_meta(house_data, house_model):
    features = house_data.drop(columns=["price"])
    return bundle(house_model, features, name="house", metrics={"rmse": 41000.0, "r2": 0.8},
                  tags=["a"]).meta


def test_same_meta_is_identical(house_meta):
    diff = compare(house_meta, copy.deepcopy(house_meta), "v1", "v2")
    assert diff.identical
    assert diff.summary() == "v1 and v2 do not differ."


def test_metrics_changed_added_removed(house_meta):
    new = copy.deepcopy(house_meta)
    new.metrics = {"rmse": 39000.0, "mae": 30000.0}
    diff = compare(house_meta, new)
    got = {(c.field, c.old, c.new) for c in diff.metrics}
    assert got == {("rmse", 41000.0, 39000.0), ("r2", 0.8, None), ("mae", None, 30000.0)}
    assert "3 metric(s) changed" in diff.summary()


def test_metadata_fields(house_meta, churn_data, churn_model):
    other = bundle(churn_model, churn_data.drop(columns=["churned"]), name="house",
                   description="churn").meta
    diff = compare(house_meta, other)
    fields = {c.field: (c.old, c.new) for c in diff.metadata}
    assert fields["task"] == ("regression", "binary")
    assert fields["classes"] == (None, ["no", "yes"])
    assert fields["description"] == ("", "churn")
    assert "model_class" not in fields  # both are pipelines


def test_prototype_added_removed_retyped(house_data):
    old = Prototype.from_frame(house_data.drop(columns=["price"]))
    changed = house_data.drop(columns=["price", "grade"]).assign(
        bedrooms=house_data["bedrooms"].astype(float), garage=1)
    new = Prototype.from_frame(changed)
    changes = compare_prototypes(old, new)
    by_what = {}
    for c in changes:
        by_what.setdefault(c.what, []).append(c)
    assert [c.column for c in by_what["added"]] == ["garage"]
    assert by_what["added"][0].new == "int (int64)"
    assert [c.column for c in by_what["removed"]] == ["grade"]
    assert [(c.column, c.old, c.new) for c in by_what["retyped"]] == [
        ("bedrooms", "int (int64)", "float (float64)")]


def test_prototype_categories_nullable_and_range(house_data):
    base = house_data.drop(columns=["price"])
    old = Prototype.from_frame(base)
    shifted = base.assign(zipcode=base["zipcode"].replace("98001", "99999"),
                          sqft_living=base["sqft_living"] * 2)
    shifted.loc[0, "bathrooms"] = None
    changes = {c.column + ":" + c.what: c for c in compare_prototypes(old, Prototype.from_frame(
        shifted))}
    assert changes["zipcode:categories"].old == ["98001"]
    assert changes["zipcode:categories"].new == ["99999"]
    assert changes["bathrooms:nullable"].new is True
    assert "sqft_living:range" in changes


def test_environment_changes():
    old = {"python": "3.11.4", "packages": {"scikit-learn": "1.5.0", "numpy": "1.26.0"}}
    new = {"python": "3.12.1", "packages": {"scikit-learn": "1.6.0", "xgboost": "2.0.0"}}
    got = {(c.field, c.old, c.new) for c in compare_environments(old, new)}
    assert got == {("python", "3.11.4", "3.12.1"), ("scikit-learn", "1.5.0", "1.6.0"),
                   ("numpy", "1.26.0", None), ("xgboost", None, "2.0.0")}


def test_summary_names_columns(house_meta, house_data):
    new = copy.deepcopy(house_meta)
    new.prototype = Prototype.from_frame(house_data.drop(columns=["price", "yr_built"]))
    text = compare(house_meta, new, "a", "b").summary()
    assert text.startswith("From a to b:")
    assert "1 column(s) removed (yr_built)" in text
