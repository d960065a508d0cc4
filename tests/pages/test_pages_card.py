"""Card page under AppTest: writing sections, edit history, read-only share links."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.model.bundle import bundle
from core.store.versionstore import VersionStore

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_data, house_model):
    path = tmp_path_factory.mktemp("card-page") / "store"
    store = VersionStore(str(path))
    features = house_data.drop(columns=["price"])
    first = store.write(bundle(house_model, features, name="house", metrics={"rmse": 45000.0}))
    second = store.write(bundle(house_model, features, name="house", metrics={"rmse": 41000.0}))
    store.set_alias("house", "staging", first.version)
    store.set_alias("house", "production", second.version)
    return store


@pytest.fixture
def store(board, monkeypatch):
    """The module's store, opened by the page (each test writes to its own section)."""
    monkeypatch.setenv("FIXATIVE_STORE", board.url)
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


def _downloads(at: AppTest) -> list[str]:
    return [e.proto.label for e in at.get("download_button")]


def test_empty_store_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "empty"))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    at = _page()
    assert "no models yet" in at.info[0].value and "Upload" in at.info[0].value
    links = [e.proto.label for e in at.get("page_link")]
    assert links == ["Upload a model file", "Add the example models"]


def test_read_only_link_shows_the_card_without_editing_controls(store):
    version = store.versions("house")[-1].version
    at = _page(model="house", version=version, view="card")
    assert len(at.text_area) == 0 and len(at.text_input) == 0 and len(at.button) == 0
    assert len(at.tabs) == 0
    html = _html(at)
    assert "Model card: house" in html and f"<code>{version}</code> (this card)" in html
    assert "Not written yet." in html and "sqft_living" in html
    assert _downloads(at) == ["Download this card (HTML)"]


def test_alias_link_follows_the_alias(store):
    first = store.versions("house")[0].version
    at = _page(model="house", alias="staging", view="card")
    assert f"<code>{first}</code> (this card)" in _html(at)
    assert len(at.text_area) == 0


@pytest.mark.parametrize(("params", "message"), [
    ({"alias": "nosuch"}, "house has no alias 'nosuch' (its aliases: "),
    ({"version": "20000101T000000Z-00000"}, "The link names version '20000101T000000Z-00000'"),
])
def test_a_shared_link_to_nothing_shows_no_other_card(store, params, message):
    at = _page(model="house", view="card", **params)
    assert not _html(at) and not _downloads(at)
    [error] = [e.value for e in at.error]
    assert message in error and error.endswith("Ask whoever shared it for a new link.")
    assert "showing the latest" not in error


def test_saving_a_section_records_it_and_shows_it_in_history(store):
    version = store.versions("house")[-1].version
    at = _page(model="house", version=version)
    assert "No section has been written yet" in at.info[0].value
    assert at.selectbox(key="card_section").value == "model_details"
    at.selectbox(key="card_section").set_value("intended_use").run()
    assert any("primary uses and users" in m.value for m in at.markdown)
    at.text_input(key="card_user").input("Ana").run()
    at.text_area(key="card_text_intended_use").input("Estimate **prices** of listings.").run()
    assert "<strong>prices</strong>" in _html(at)  # live preview
    assert any("Unsaved changes" in c.value for c in at.caption)
    at.button(key="card_save").click().run()
    assert at.success[0].value == "Saved 'Intended use'."

    records = store.records("card", "house", version)
    assert [(r.user, r.payload) for r in records] == [
        ("Ana", {"section": "intended_use", "text": "Estimate **prices** of listings."})]
    table = at.dataframe[0].value
    assert table[["section", "by", "characters"]].values.tolist() == [["Intended use", "Ana", 32]]
    assert "+Estimate **prices** of listings." in at.code[0].value
    assert "<p>Estimate <strong>prices</strong> of listings.</p>" in _html(at)  # the card tab

    # saving the same text again writes nothing
    at.button(key="card_save").click().run()
    assert "has no changes to save" in at.info[0].value
    assert len(store.records("card", "house", version)) == 1

    # the shared read-only view shows the saved text
    view = _page(model="house", version=version, view="card")
    assert "Estimate <strong>prices</strong> of listings." in _html(view)
    assert "Written by Ana" in _html(view)


def test_drafts_survive_switching_sections(store):
    n = len(store.records("card", "house"))
    at = _page(model="house")
    at.selectbox(key="card_section").set_value("factors").run()
    at.text_area(key="card_text_factors").input("Draft one").run()
    at.selectbox(key="card_section").set_value("ethics").run()
    at.selectbox(key="card_section").set_value("factors").run()
    assert at.text_area(key="card_text_factors").value == "Draft one"
    assert len(store.records("card", "house")) == n  # nothing saved


def test_hostile_text_is_escaped_in_preview_and_card(store):
    at = _page(model="house", version=store.versions("house")[0].version)
    at.text_area(key="card_text_model_details").input(
        "<script>alert(1)</script> [x](javascript:alert(1))").run()
    at.button(key="card_save").click().run()
    html = _html(at)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html


def test_share_tab_offers_links_and_downloads(store):
    version = store.versions("house")[-1].version
    at = _page(model="house", version=version)
    links = [c.value for c in at.code]
    assert f"./card?model=house&version={version}&view=card" in links
    assert "./card?model=house&alias=production&view=card" in links
    assert "./card?model=house&alias=staging&view=card" not in links  # not this version
    assert _downloads(at) == ["Download HTML", "Download .qmd"]
    assert any("Quarto is not installed here" in c.value for c in at.caption)
