"""Models page under AppTest: recorded parameters in Details and their diff in Compare."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from streamlit.testing.v1 import AppTest

from core.model.bundle import bundle
from core.store.versionstore import VersionStore

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "models.py")
STRUCTURE = ("Pipeline(ColumnTransformer(OneHotEncoder, StandardScaler) → "
             "RandomForestRegressor)")


def _forest(data, trees):
    features = data.drop(columns="price").head(300)
    model = Pipeline([
        ("prep", ColumnTransformer([
            ("zip", OneHotEncoder(handle_unknown="ignore"), ["zipcode"]),
            ("num", StandardScaler(), ["bedrooms", "sqft_living", "grade"]),
        ])),
        ("forest", RandomForestRegressor(n_estimators=trees, max_depth=3, random_state=0,
                                         n_jobs=1)),
    ])
    return model.fit(features, data["price"].head(300)), features


@pytest.fixture(scope="module")
def bundles(house_data):
    out = []
    for trees in (100, 300):
        model, features = _forest(house_data, trees)
        out.append(bundle(model, features, name="houses", training_code="git:3f2c1ab",
                          metrics={"rmse": 40000.0}, metrics_data="holdout", metrics_rows=80))
    old = bundle(model, features, name="houses")
    old.meta.lineage = None  # written before parameters were recorded
    return [old, *out]


@pytest.fixture
def versions(tmp_path, monkeypatch, bundles):
    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    store = VersionStore(str(tmp_path / "store"))
    return [store.write(b).version for b in bundles]


def _page(**params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


def _frame(at: AppTest, *columns: str):
    """The first table on the page with all these columns, or None."""
    for df in at.dataframe:
        if set(columns) <= set(map(str, df.value.columns)):
            return df.value
    return None


def test_details_show_structure_parameters_and_lineage(versions):
    at = _page(model="houses", version=versions[2])
    details = _frame(at, "field", "value").set_index("field")["value"]
    assert details["class"] == STRUCTURE
    assert details["training code"] == "git:3f2c1ab"
    assert details["training data"] == "not recorded"
    assert details["metrics computed on"] == "holdout (80 rows)"
    params = _frame(at, "parameter", "value").set_index("parameter")["value"]
    assert params["forest__n_estimators"] == "300" and params["forest__max_depth"] == "3"
    steps = _frame(at, "step", "class").set_index("step")["class"]
    assert steps["prep/num"] == "sklearn.preprocessing._data.StandardScaler"


def test_old_version_says_parameters_not_recorded(versions):
    at = _page(model="houses", version=versions[0])
    assert _frame(at, "parameter", "value") is None
    assert any("Parameters not recorded" in c.value for c in at.caption)
    details = _frame(at, "field", "value").set_index("field")["value"]
    assert details["class"] == "Pipeline" and details["training code"] == "not recorded"


def test_compare_shows_changed_parameters_then_all(versions):
    old, v100, v300 = versions
    at = _page(model="houses")
    at.segmented_control(key="models_section").set_value("Compare").run()
    at.selectbox(key="models_cmp_old").set_value(v100).run()
    diff = _frame(at, "parameter", v300)
    assert diff.to_dict("records") == [
        {"parameter": "forest__n_estimators", v100: "100", v300: "300"}]
    assert "1 parameter(s) changed (forest__n_estimators)" in "".join(
        m.value for m in at.markdown)
    at.toggle(key="models_cmp_all_params").set_value(True).run()
    assert not at.exception, at.exception
    everything = _frame(at, "parameter", v300).set_index("parameter")
    assert len(everything) > 30 and everything.loc["forest__max_depth", v300] == "3"
    at.toggle(key="models_cmp_all_params").set_value(False).run()
    at.selectbox(key="models_cmp_old").set_value(old).run()
    assert _frame(at, "parameter", v300).to_dict("records") == [
        {"parameter": "parameters", old: "not recorded",
         v300: f"{len(everything)} recorded"}]
