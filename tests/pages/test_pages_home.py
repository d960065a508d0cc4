"""Home page under AppTest: status, next steps, and the example models."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.model.bundle import bundle
from core.store.versionstore import VersionStore

# The page script runs on its own, as the app runs it inside its navigation; the
# selection comes from the URL's query parameters, as a deep link gives it.
PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "home.py")


@pytest.fixture
def store_dir(tmp_path, monkeypatch):
    path = tmp_path / "store"
    monkeypatch.setenv("FIXATIVE_STORE", str(path))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    return path


def _home() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    return "\n".join([e.value for e in at.markdown] + [e.value for e in at.info]
                     + [e.value for e in at.success] + [e.value for e in at.caption])


def test_empty_store_says_what_to_do(store_dir):
    at = _home()
    assert at.title[0].value == "Fixative"
    assert "The store is empty" in at.info[0].value
    assert "Upload" in at.info[0].value
    assert at.button(key="home_add_examples").label == "Add the example models"
    assert [m.value for m in at.metric][:2] == ["0", "0"]
    assert str(store_dir) in _texts(at)


def test_add_example_models(store_dir):
    at = _home()
    at.button(key="home_add_examples").click().run(timeout=120)
    assert not at.exception, at.exception
    store = VersionStore(str(store_dir))
    models = {m.name: m for m in store.list_models()}
    assert set(models) == {"house-prices", "customer-churn"}
    assert models["house-prices"].n_versions == 2
    assert models["customer-churn"].task == "binary"
    assert store.aliases("house-prices")["production"] == store.versions("house-prices")[-1].version
    house = store.meta("house-prices", store.versions("house-prices")[-1].version)
    assert set(house.metrics) == {"rmse", "mae", "r2"} and house.profile is not None
    first = store.meta("house-prices", store.versions("house-prices")[0].version)
    assert "yr_built" not in first.prototype.names and "yr_built" in house.prototype.names
    churn = store.meta("customer-churn", store.versions("customer-churn")[-1].version)
    assert 0.5 < churn.metrics["accuracy"] <= 1 and churn.classes == ["no", "yes"]
    # After the rerun the page shows the populated store and the new selection.
    assert "3 version(s)" in _texts(at)
    assert at.session_state["_fx_pending_selection"] == ("house-prices", None)
    assert not [b for b in at.button if b.key == "home_add_examples"]


def test_populated_store(store_dir, house_model, house_data):
    VersionStore(str(store_dir)).write(
        bundle(house_model, house_data.drop(columns=["price"]), name="houses"))
    at = _home()
    assert "1 model(s) with 1 version(s)" in _texts(at)
    assert at.dataframe[0].value["name"].tolist() == ["houses"]
