"""Models page under AppTest: table, details, compare, aliases, delete and prune."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.model import examples
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

# The page script runs on its own, as the app runs it inside its navigation; the
# selection comes from the URL's query parameters, as a deep link gives it.
PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "models.py")


@pytest.fixture(scope="module")
def bundles(house_data, house_model, churn_data, churn_model):
    small = examples.house_model(house_data.drop(columns=["yr_built"]), n_estimators=5)
    return [
        bundle(small, house_data.drop(columns=["price", "yr_built"]), name="houses",
               description="small", metrics={"rmse": 50000.0}),
        bundle(house_model, house_data.drop(columns=["price"]), name="houses",
               description="bigger", metrics={"rmse": 42000.0, "r2": 0.8}),
        bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn"),
    ]


@pytest.fixture
def store(tmp_path, monkeypatch, bundles):
    path = tmp_path / "store"
    monkeypatch.setenv("FIXATIVE_STORE", str(path))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    store = VersionStore(str(path))
    for b in bundles:
        store.write(copy.deepcopy(b))
    return store


def _page(section: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    if section is not None:
        at.segmented_control(key="models_section").set_value(section).run()
        assert not at.exception, at.exception
    return at


def _frame(at: AppTest, *columns: str):
    """The first table on the page that has all these columns."""
    for df in at.dataframe:
        if set(columns) <= set(map(str, df.value.columns)):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def _texts(at: AppTest) -> str:
    return "\n".join(e.value for kind in ("markdown", "info", "success", "caption", "error",
                                          "subheader", "header")
                     for e in getattr(at, kind))


def test_empty_store_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "empty"))
    at = _page()
    assert "no models yet" in at.info[0].value and "Upload" in at.info[0].value


def test_table_and_search(store):
    at = _page()
    table = at.dataframe(key="models_table").value
    assert set(table["name"]) == {"houses", "churn"}
    row = table.set_index("name").loc["houses"]
    assert row["versions"] == 2 and row["task"] == "regression" and row["library"] == "sklearn"
    assert "Select a model" in at.info[0].value
    at.text_input(key="models_search").input("binary").run()
    assert at.dataframe(key="models_table").value["name"].tolist() == ["churn"]
    at.text_input(key="models_search").input("nothing-like-this").run()
    assert "No model matches 'nothing-like-this'" in at.info[0].value


def test_deep_link_selects_model_and_version(store):
    first = store.versions("houses")[0].version
    at = _page(model="houses", version=first)
    assert at.query_params["model"] == "houses" and at.query_params["version"] == first
    assert f"houses@{first}" in [s.value for s in at.subheader]
    assert "small" in _texts(at)
    assert _frame(at, "metric", "value").to_dict("records") == [
        {"metric": "rmse", "value": 50000.0}]
    proto = _frame(at, "column", "kind", "values seen")
    assert "yr_built" not in proto["column"].tolist() and "zipcode" in proto["column"].tolist()
    env = _frame(at, "name", "version").set_index("name")["version"]
    assert "scikit-learn" in env.index


def test_deep_link_by_alias(store):
    first = store.versions("houses")[0].version
    store.set_alias("houses", "staging", first)
    at = _page(model="houses", alias="staging")
    assert f"houses@{first}" in [s.value for s in at.subheader]


def test_reference_profile_plots(store):
    v1 = store.versions("houses")[0].version
    at = _page("Reference profile", model="houses", version=v1)
    n_columns = len(store.meta("houses", v1).profile["columns"])
    charts = [c for c in at.get("plotly_chart")]
    assert n_columns == 5 and len(charts) == 1 + n_columns  # the timeline, then the columns
    churn = _page("Reference profile", model="churn")
    assert len(churn.get("plotly_chart")) == 1 + 4


def test_version_without_sample_has_no_profile(store, house_model):
    info = store.write(bundle(house_model, None, name="bare"))
    at = _page("Reference profile", model="bare")
    assert "stored without a training sample" in at.info[0].value
    details = _page(model="bare", version=info.version)
    assert "No metrics recorded" in _texts(details)


def test_latest_by_default_and_compare(store):
    v1, v2 = (v.version for v in store.versions("houses"))
    at = _page(model="houses")
    assert f"houses@{v2}" in [s.value for s in at.subheader]
    at.segmented_control(key="models_section").set_value("Compare").run()
    text = _texts(at)
    assert f"From {v1} to {v2}:" in text and "1 column(s) added (yr_built)" in text
    changes = _frame(at, "column", "change")
    assert changes.set_index("column").loc["yr_built", "change"] == "added"
    (metrics,) = [df.value.set_index("field") for df in at.dataframe
                  if "field" in df.value.columns and "rmse" in df.value["field"].tolist()]
    assert metrics.loc["rmse", v1] == "50,000" and metrics.loc["r2", v1] == "—"


def test_compare_shows_readable_values_and_every_input_column(store, house_model, house_data):
    from sklearn.linear_model import LinearRegression

    wide = house_data.drop(columns=["price", "zipcode"]).copy()
    for i in range(9):  # 14 input columns: more than a table shows without being told
        wide[f"extra_{i}"] = np.arange(len(wide)) % (i + 2)
    model = LinearRegression().fit(wide, house_data["price"])
    for rmse, tags in ((41234.123456789012, ["a"]), (40000.987654321098, ["a", "b"])):
        b = bundle(model, wide, name="wide", metrics={"rmse": rmse}, tags=tags)
        store.write(b)
    at = _page("Compare", model="wide")
    (meta,) = [df.value.set_index("field") for df in at.dataframe
               if "field" in df.value.columns and "tags" in df.value["field"].tolist()]
    (metrics,) = [df.value.set_index("field") for df in at.dataframe
                  if "field" in df.value.columns and "rmse" in df.value["field"].tolist()]
    v1, v2 = (v.version for v in store.versions("wide"))
    assert (meta.loc["tags", v1], meta.loc["tags", v2]) == ("a", "a, b")
    assert (metrics.loc["rmse", v1], metrics.loc["rmse", v2]) == ("41,234.1", "40,001")
    details = _page(model="wide")
    (grid,) = [df for df in details.dataframe if "values seen" in df.value.columns]
    assert len(grid.value) == 14


def test_moving_an_alias_shows_in_history(store):
    v1, v2 = (v.version for v in store.versions("houses"))
    at = _page("Aliases", model="houses")
    assert "No alias has been set or moved yet." in _texts(at)
    at.text_input(key="models_alias_name").input("production")
    at.selectbox(key="models_alias_version").select(v1)
    at.button(key="models_alias_set").click().run()
    assert not at.exception, at.exception
    assert store.aliases("houses") == {"production": v1}
    at.selectbox(key="models_alias_version").select(v2)
    at.button(key="models_alias_set").click().run()
    assert f"Alias production of houses now points at {v2}." in _texts(at)
    history = _frame(at, "alias", "from", "to")
    assert history[["alias", "from", "to"]].values.tolist() == [
        ["production", v1, v2], ["production", "", v1]]
    assert _frame(at, "alias", "version").values.tolist() == [["production", v2]]


def test_bad_alias_name_is_refused(store):
    at = _page("Aliases", model="houses")
    at.text_input(key="models_alias_name").input("no way/")
    at.button(key="models_alias_set").click().run()
    assert "not allowed" in "\n".join(e.value for e in at.error)
    assert store.aliases("houses") == {}


def test_delete_needs_confirmation_naming_the_version(store):
    v1, v2 = (v.version for v in store.versions("houses"))
    at = _page("Delete and prune", model="houses", version=v1)
    assert at.button(key="models_delete").disabled
    box = at.checkbox(key=f"models_delete_ok_{v1}")
    assert box.label.startswith(f"Delete houses@{v1} (created ")
    box.check().run()
    at.button(key="models_delete").click().run()
    assert not at.exception, at.exception
    assert [v.version for v in store.versions("houses")] == [v2]
    assert f"Deleted houses@{v1}." in _texts(at)


def test_prune_names_what_goes(store, bundles):
    for _ in range(2):
        store.write(copy.deepcopy(bundles[1]))
    ids = [v.version for v in store.versions("houses")]
    store.set_alias("houses", "production", ids[0])
    at = _page("Delete and prune", model="houses")
    at.number_input(key="models_keep").set_value(1).run()
    sure = [c for c in at.checkbox if c.key.startswith("models_prune_ok_")][0]
    assert sure.label.startswith("Delete 2 version(s) of houses for good:")
    assert ids[1] in sure.label and ids[2] in sure.label
    assert ids[0] not in sure.label and ids[3] not in sure.label
    sure.check().run()
    at.button(key="models_prune").click().run()
    assert not at.exception, at.exception
    assert [v.version for v in store.versions("houses")] == [ids[0], ids[3]]
    assert "Pruned 2 version(s) of houses" in _texts(at)


def test_compile_button_records_and_shows_the_result(store):
    version = store.versions("churn")[-1].version
    at = _page(model="churn", version=version)
    captions = " ".join(c.value for c in at.caption)
    assert "Compiled engine (ONNX): not compiled" in captions
    at.button(key="models_compile").click().run()
    assert not at.exception, at.exception
    report = store.compiled("churn", version)
    assert report["available"] and report["labels_identical"] is True
    text = " ".join(c.value for c in at.caption) + " ".join(s.value for s in at.success)
    assert "verified on 800 sample rows" in text and "labels identical" in text
    assert at.button(key="models_compile").label == "Compile again"
