"""Monitor page, Challenger tab under AppTest: the comparison, its verdict and promote."""

from __future__ import annotations

from pathlib import Path

import pytest
from challenger_helpers import values_store  # noqa: F401  (fixture)
from monitor_helpers import monitor_page, page_texts

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "monitor.py")


@pytest.fixture()
def board(values_store, monkeypatch):  # noqa: F811
    store, vs, *_ = values_store
    monkeypatch.setenv("FIXATIVE_STORE", str(store.url))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    return store, vs


def _page(**params: str):
    return monitor_page("Challenger", **params)


def test_challenger_tab_compares_and_promotes(board):
    store, vs = board
    at = _page(model="flat", version=vs[0])
    at.text_input(key="mon_ch_version").input(vs[1]).run()
    assert not at.exception, at.exception
    text = page_texts(at)
    assert f"flat@{vs[1]} against flat@{vs[0]}: challenger better. Judged on MAE" in text
    assert "No alias points at" in text
    store.set_alias("flat", "page", vs[0])
    at = _page(model="flat", version=vs[0])
    at.text_input(key="mon_ch_version").input(f"flat@{vs[1]}").run()
    at.button(key="mon_ch_promote").click().run()
    assert not at.exception, at.exception
    assert f"flat:page now points at {vs[1]}" in page_texts(at)
    assert store.aliases("flat")["page"] == vs[1]


def test_challenger_tab_without_a_challenger_says_what_to_do(board):
    store, vs = board
    at = _page(model="flat", version=vs[0])
    at.text_input(key="mon_ch_version").input("nosuchversion").run()
    assert not at.exception, at.exception
    assert "nosuchversion" in page_texts(at)
    at.text_input(key="mon_ch_version").input("=HYPERLINK(\"x\")").run()
    assert not at.exception, at.exception
