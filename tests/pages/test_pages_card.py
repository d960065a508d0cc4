"""Card page under AppTest: writing sections, edit history, share links and what they open."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from core.cards import share
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


def _shared(**params: str | None) -> AppTest:
    """app.py opened by a share link (a fresh session, no page chosen)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update({k: v for k, v in params.items() if v is not None})
    at.switch_page("pages/card.py")  # the link's path, /card
    at.run()
    assert not at.exception, at.exception
    return at


def _link_params(link: share.ShareLink) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(link.query()).items()}


def test_share_link_shows_the_card_alone(store):
    version = store.versions("house")[-1].version
    link = share.create(store, "house", version=version)
    at = _shared(**_link_params(link))
    assert len(at.text_area) == 0 and len(at.text_input) == 0 and len(at.button) == 0
    assert len(at.tabs) == 0 and len(at.sidebar.selectbox) == 0 and not at.sidebar.caption
    html = _html(at)
    assert "Model card: house" in html and f"<code>{version}</code> (this card)" in html
    assert _downloads(at) == ["Download this card (HTML)"]
    assert not at.error and not at.warning


def test_share_link_opens_the_card_without_the_password(store, monkeypatch):
    monkeypatch.setenv("FIXATIVE_PASSWORD", "correct horse")
    version = store.versions("house")[-1].version
    link = share.create(store, "house", version=version)
    at = _shared(**_link_params(link))
    assert f"<code>{version}</code> (this card)" in _html(at)
    assert not at.text_input  # no sign-in form
    with pytest.raises(ValueError, match=r"Known pages: \['Model card', 'card'\]"):
        at.switch_page("pages/models.py")  # no other page exists in this session
    # and the session is not signed in: the same session without the token gets the gate
    del at.query_params["share"]
    at.run()
    assert at.text_input(key="_fx_login_password") is not None and not _html(at)


def test_alias_share_link_follows_the_alias(store):
    first = store.versions("house")[0].version
    link = share.create(store, "house", alias="staging")
    at = _shared(**_link_params(link))
    assert f"<code>{first}</code> (this card)" in _html(at)
    assert len(at.text_area) == 0


def _edits(store) -> list[dict[str, str | None]]:
    first, second = (v.version for v in store.versions("house"))
    link = share.create(store, "house", version=second)
    good = _link_params(link)
    return [
        {**good, "version": first},                                  # another version
        {**good, "model": "other"},                                  # another model
        {"model": "house", "alias": "production", "share": good["share"]},
        {**good, "share": good["share"][:-3]},                       # cut short
        {**good, "share": good["share"][:-1] + "x"},                 # forged
        {**good, "share": "x" * 100_000},                            # huge
        {**good, "share": ""},
        {"share": good["share"]},                                    # names nothing
    ]


def test_an_edited_share_link_shows_nothing_of_what_it_names(store):
    first = store.versions("house")[0].version
    for params in _edits(store):
        at = _shared(**params)
        assert not _html(at) and not _downloads(at), params
        assert [e.value for e in at.error] == [share.INVALID_MESSAGE], params
        assert not at.warning and not at.sidebar.selectbox
        assert first not in "".join(e.value for e in at.error)


def test_a_revoked_share_link_shows_nothing(store):
    version = store.versions("house")[-1].version
    link = share.create(store, "house", version=version)
    assert _html(_shared(**_link_params(link)))
    share.revoke(store, "house", link.id)
    at = _shared(**_link_params(link))
    assert not _html(at) and [e.value for e in at.error] == [share.INVALID_MESSAGE]


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

    # a share link shows the saved text
    view = _shared(**_link_params(share.create(store, "house", version=version)))
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


def test_share_tab_makes_lists_and_revokes_links(store):
    version = store.versions("house")[-1].version
    at = _page(model="house", version=version)
    assert at.radio(key="card_share_target").options == [
        f"this version ({version})",
        "the alias 'production' (shows whichever version it points to when opened)"]
    before = {link.id for link in share.links(store, "house")}
    at.radio(key="card_share_target").set_value(("alias", "production")).run()
    at.button(key="card_share_make").click().run()
    assert "Made a share link to house:production" in at.success[0].value
    [made] = [link for link in share.links(store, "house") if link.id not in before]
    assert (made.alias, made.created_by) == ("production", "tester")
    assert f"./card?{made.query()}" in [c.value for c in at.code]
    at.button(key=f"card_revoke_{made.id}").click().run()
    assert "Revoked the link to house:production" in at.success[0].value
    assert not next(x for x in share.links(store, "house") if x.id == made.id).active
    assert f"./card?{made.query()}" not in [c.value for c in at.code]
    assert any("Revoked by tester" in c.value for c in at.caption)
    assert _downloads(at) == ["Download HTML", "Download .qmd"]
    assert any("Quarto is not installed here" in c.value for c in at.caption)
