"""Card page under AppTest: results on served predictions, overall and per a chosen column,
and the new sections editable like the others."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import write_log
from streamlit.testing.v1 import AppTest

from core.cards import share
from core.model.bundle import bundle
from core.monitoring.actuals import save_actuals
from core.store.versionstore import VersionStore

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_data, house_model):
    store = VersionStore(str(tmp_path_factory.mktemp("card-eval") / "store"))
    features = house_data.drop(columns=["price"])
    b = bundle(house_model, features, name="house", metrics={"rmse": 41000.0},
               metrics_data="holdout", metrics_rows=200)
    store.write(b)
    ts = pd.Timestamp("2025-03-03", tz="UTC") + pd.to_timedelta(np.arange(40) * 600, unit="s")
    logged = write_log(store, b, features.head(40), ts, request_size=2)
    logged["price"] = house_data["price"].loc[logged["source_row"]].to_numpy()
    save_actuals(store, "house", logged, key_column="request_id", actual_column="price",
                 row_column="row")
    return store, b.version, logged


@pytest.fixture
def store(board, monkeypatch):
    monkeypatch.setenv("FIXATIVE_STORE", board[0].url)
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    monkeypatch.setenv("FIXATIVE_USER", "tester")
    return board


def _page(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)
    at.switch_page("pages/card.py")
    at.run()
    assert not at.exception, at.exception
    return at


def _html(at: AppTest) -> str:
    return "\n".join(h.value for h in at.html)


def test_results_overall_then_per_chosen_column(store):
    _, version, logged = store
    at = _page(model="house", version=version)
    html = _html(at)
    assert "holdout (200 rows)" in html
    assert f"({len(logged)} rows of {len(logged)} predictions)" in html
    assert "where zipcode" not in html
    pick = at.selectbox(key="card_segment_column")
    assert "zipcode" in pick.options and "bedrooms" in pick.options
    pick.set_value("zipcode").run()
    assert not at.exception, at.exception
    html = _html(at)
    top = logged["zipcode"].value_counts()
    assert f"where zipcode = {top.index[0]} ({top.iloc[0]} rows)" in html


def test_share_link_shows_the_results_without_controls(store):
    board, version, logged = store
    link = share.create(board, "house", version=version)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({k: v[0] for k, v in parse_qs(link.query()).items()})
    at.switch_page("pages/card.py")  # the link's path, /card
    at.run()
    assert not at.exception, at.exception
    assert "card_segment_column" not in [s.key for s in at.selectbox]
    html = _html(at)
    assert "predictions with actuals" in html
    assert f"({len(logged)} rows of {len(logged)} predictions)" in html


def test_licence_is_written_like_any_section(store):
    _, version, _ = store
    at = _page(model="house", version=version)
    at.selectbox(key="card_section").set_value("license").run()
    at.text_area(key="card_text_license").input("Apache-2.0").run()
    at.button(key="card_save").click().run()
    assert not at.exception, at.exception
    assert any("Saved 'Licence'" in s.value for s in at.success)
    assert "Apache-2.0" in _html(at)
