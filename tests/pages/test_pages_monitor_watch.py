"""Monitor page, Estimated and Alerts tabs under AppTest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from monitor_helpers import monitor_page, page_texts, store_version, write_log
from streamlit.testing.v1 import AppTest
from watch_helpers import receiver

from core.monitoring.actuals import save_actuals
from core.store.versionstore import VersionStore
from core.watch import config

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "monitor.py")
T0 = pd.Timestamp("2025-03-03", tz="UTC")


@pytest.fixture()
def board(tmp_path, monkeypatch, house_data, house_model):
    path = tmp_path / "store"
    monkeypatch.setenv("FIXATIVE_STORE", str(path))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    store = VersionStore(str(path))
    b = store_version(store, house_model, house_data, "price", "house")
    rows = house_data.iloc[:40].reset_index(drop=True)
    frame = write_log(store, b, rows.drop(columns=["price"]),
                      [T0 + pd.Timedelta(hours=3 * i) for i in range(40)], request_size=10)
    frame["price"] = rows.loc[frame["source_row"], "price"].to_numpy()
    save_actuals(store, "house", frame, key_column="request_id", actual_column="price",
                 row_column="row")
    return store, b


def _page(tab: str):
    """The page with ``tab`` open (only the open tab runs)."""
    return monitor_page(tab, model="house")


def _button(at: AppTest, label: str):
    for b in at.button:
        if b.label == label:
            return b
    raise AssertionError(f"no button {label!r}; have {[b.label for b in at.button]}")


def test_estimation_says_why_it_cannot_estimate_yet(board):
    at = _page("Estimated")
    _button(at, "Estimate performance").click().run()
    assert not at.exception, at.exception
    assert "Cannot estimate: the reference has 40 rows with actuals" in page_texts(at)


def test_alerts_tab_saves_channels_refuses_urls_and_sends_a_test(board, monkeypatch):
    store, _ = board
    at = _page("Alerts")
    assert "No channel yet: status changes are recorded but not sent." in page_texts(at)
    at.selectbox(key="mon_watch_kind").set_value("webhook")
    at.text_input(key="mon_watch_cname").input("ops")
    at.text_input(key="mon_watch_env").input("https://hooks.example/T/B/secret")
    at.button(key="FormSubmitter:mon_watch_form-Save").click().run()
    assert "is not an environment variable name" in page_texts(at)
    assert config.load(store, "house").channels == []
    at.text_input(key="mon_watch_env").input("OPS_HOOK")
    at.text_input(key="mon_watch_schedule").input("*/10 * * * *")
    at.button(key="FormSubmitter:mon_watch_form-Save").click().run()
    assert not at.exception, at.exception
    saved = config.load(store, "house")
    assert saved.schedule == "*/10 * * * *"
    assert saved.channels == [config.Channel("ops", "webhook", "OPS_HOOK")]
    with receiver() as rec:
        monkeypatch.setenv("OPS_HOOK", rec.url)
        _button(at, "Send a test notification").click().run()
    assert "ops: delivered" in page_texts(at)
    assert rec.payloads("test")[0]["model"] == "house"


def test_estimated_metrics_can_get_thresholds(board):
    at = _page("Thresholds")
    options = at.selectbox(key="mon_rule_metric").options
    assert "estimated:mae" in options and "estimated:rmse" in options
    at.selectbox(key="mon_rule_metric").set_value("estimated:mae").run()
    assert not at.exception, at.exception
    assert at.session_state["mon_rule_dir"] == "above"  # an error: worse above
