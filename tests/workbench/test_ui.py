"""Shared page helpers: the password gate, the model picker and its URL, cached reads."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.model.bundle import bundle
from core.store.versionstore import VersionStore
from core.workbench import ui

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def house_bundle(house_model, house_data):
    return bundle(house_model, house_data.drop(columns=["price"]).head(200), name="houses")


@pytest.fixture
def store(tmp_path, monkeypatch, house_bundle):
    path = tmp_path / "store"
    monkeypatch.setenv("FIXATIVE_STORE", str(path))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    store = VersionStore(str(path))
    for _ in range(2):
        store.write(copy.deepcopy(house_bundle))
    return store


def _app(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


# What app.py draws around every page: the store and the shared picker.
FRAME = """
import streamlit as st
from core.workbench import ui
name, version = ui.sidebar()
st.write(f"selected {ui.selected_ref()}")
"""


def _frame(**params: str) -> AppTest:
    at = AppTest.from_string(FRAME, default_timeout=60)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    return at


def _all_text(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "info", "success", "caption", "error", "warning", "title"):
        parts += [e.value for e in getattr(at, kind)]
    parts += [w.value or "" for w in at.text_input]
    parts += [repr(v) for k, v in at.session_state.to_dict().items()]
    return "\n".join(map(str, parts))


# -- password gate ---------------------------------------------------------------------


def test_check_password(monkeypatch):
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    assert ui.check_password("anything") and not ui.password_required()
    monkeypatch.setenv("FIXATIVE_PASSWORD", "s3cret-ü")
    assert ui.password_required()
    assert ui.check_password("s3cret-ü")
    assert not ui.check_password("s3cret")
    assert not ui.check_password("")


def test_gate_blocks_every_page_until_signed_in(store, monkeypatch):
    monkeypatch.setenv("FIXATIVE_PASSWORD", "correct horse")
    at = _app()
    assert at.title[0].value == "Fixative"
    assert "protected by a password" in _all_text(at)
    assert not at.sidebar.selectbox  # no picker, no store shown
    assert not at.metric
    at.text_input(key="_fx_login_password").input("wrong horse")
    at.button[0].click().run()
    assert "Wrong password" in at.error[0].value
    assert "wrong horse" not in "\n".join(e.value for e in at.error)
    at.text_input(key="_fx_login_password").input("correct horse")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Fixative keeps fitted models stable" in _all_text(at)
    assert at.sidebar.selectbox(key="fx_model").options == ["houses"]
    # The typed password is not kept anywhere the page can show it.
    assert "correct horse" not in _all_text(at)


def test_guessing_is_slowed_and_the_right_password_waits_too(store, monkeypatch):
    """After the free wrong tries, a try made too early is refused unread, even the
    right password; the page says how long to wait."""
    from core.workbench.access import THROTTLE

    monkeypatch.setenv("FIXATIVE_PASSWORD", "correct horse")
    monkeypatch.setattr(THROTTLE, "_clock", lambda: 1000.0)  # a slow run must not end the wait
    at = _app()
    for i in range(THROTTLE.free):
        at.text_input(key="_fx_login_password").input(f"guess {i}")
        at.button[0].click().run()
        assert "Wrong password" in at.error[0].value
    assert "Try again in 2 s" in at.error[0].value
    at.text_input(key="_fx_login_password").input("correct horse")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert "Too many wrong passwords from this address: try again in" in at.error[0].value
    assert "Fixative keeps fitted models stable" not in _all_text(at)
    assert not at.sidebar.selectbox


def test_gate_covers_page_scripts_run_directly(store, monkeypatch):
    monkeypatch.setenv("FIXATIVE_PASSWORD", "correct horse")
    at = AppTest.from_file(str(ROOT / "pages" / "upload.py"), default_timeout=60).run()
    assert not at.exception
    assert "protected by a password" in at.warning[0].value
    assert not at.file_uploader


def test_open_when_no_password(store):
    at = _app()
    assert not at.text_input or at.text_input[0].key != "_fx_login_password"
    assert "Fixative keeps fitted models stable" in _all_text(at)


# -- the app as a whole ------------------------------------------------------------------

MY_PAGES = ["pages/home.py", "pages/upload.py", "pages/models.py"]


@pytest.mark.parametrize("populated", [False, True], ids=["empty", "populated"])
def test_every_page_runs_inside_the_app(tmp_path, monkeypatch, store, populated):
    if not populated:
        monkeypatch.setenv("FIXATIVE_STORE", str(tmp_path / "empty"))
    at = _app(model="houses") if populated else _app()
    assert at.title[0].value == "Fixative"
    for page in MY_PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        # The frame is drawn around every page.
        assert any(c.value.startswith("Store: ") for c in at.sidebar.caption), page
        if populated:
            assert at.sidebar.selectbox(key="fx_model").value == "houses"
        else:
            assert at.info, f"{page} does not say what to do on an empty store"
    if populated:
        assert f"houses@{store.versions('houses')[-1].version}" in [s.value for s in at.subheader]


def test_picker_choice_reaches_the_models_page(store):
    v1, _ = (v.version for v in store.versions("houses"))
    at = _app()
    at.switch_page("pages/models.py").run()
    assert "Select a model" in at.info[0].value
    at.sidebar.selectbox(key="fx_model").select("houses").run()
    at.sidebar.selectbox(key="fx_version").select(v1).run()
    assert f"houses@{v1}" in [s.value for s in at.subheader]
    assert at.query_params == {"model": "houses", "version": v1}


# -- picker and URL ----------------------------------------------------------------------


def test_sidebar_shows_store_and_models(store):
    at = _frame()
    captions = "\n".join(c.value for c in at.sidebar.caption)
    assert f"Store: `{ui.store_location()}`" in captions
    picker = at.sidebar.selectbox(key="fx_model")
    assert picker.options == ["houses"] and picker.value is None
    assert "model" not in at.query_params


def test_picking_updates_url(store):
    v1, v2 = (v.version for v in store.versions("houses"))
    at = _frame()
    at.sidebar.selectbox(key="fx_model").select("houses").run()
    assert at.markdown[0].value == "selected ('houses', None)"
    assert at.query_params["model"] == "houses" and "version" not in at.query_params
    versions = at.sidebar.selectbox(key="fx_version")
    assert versions.options[0].startswith("latest")
    at.sidebar.selectbox(key="fx_version").select(v1).run()
    assert at.query_params["version"] == v1
    assert at.markdown[0].value == f"selected ('houses', '{v1}')"
    at.sidebar.selectbox(key="fx_version").select("latest").run()
    assert at.query_params == {"model": "houses"}


def test_deep_link_selects_model_and_version(store):
    v1, v2 = (v.version for v in store.versions("houses"))
    at = _frame(model="houses", version=v1)
    assert at.sidebar.selectbox(key="fx_model").value == "houses"
    assert at.sidebar.selectbox(key="fx_version").value == v1
    assert at.query_params == {"model": "houses", "version": v1}
    # The selection now lives in session state: the next run keeps it.
    at.run()
    assert at.markdown[0].value == f"selected ('houses', '{v1}')"


def test_deep_link_by_alias(store):
    v1, v2 = (v.version for v in store.versions("houses"))
    store.set_alias("houses", "production", v1)
    at = _frame(model="houses", alias="production")
    assert at.sidebar.selectbox(key="fx_version").value == v1
    assert at.query_params == {"model": "houses", "version": v1}
    assert "[production]" in at.sidebar.selectbox(key="fx_version").format_func(v1)


def test_select_moves_the_picker_on_the_next_run(store):
    v1, _ = (v.version for v in store.versions("houses"))
    at = AppTest.from_string(FRAME + "\nif st.button('pick', key='t_pick'):\n"
                             "    ui.select('houses', '" + v1 + "')\n    st.rerun()\n",
                             default_timeout=60).run()
    at.button(key="t_pick").click().run()
    assert not at.exception, at.exception
    assert at.sidebar.selectbox(key="fx_version").value == v1
    assert at.query_params == {"model": "houses", "version": v1}


def test_deep_link_to_unknown_model_selects_nothing(store):
    at = _frame(model="nope", version="x")
    assert at.sidebar.selectbox(key="fx_model").value is None
    assert "model" not in at.query_params
    assert [w.value for w in at.warning] == [
        "The link names the model 'nope', which is not in this store; choose a model in the "
        "sidebar."]


def test_deep_link_to_deleted_version_falls_back_to_latest(store):
    at = _frame(model="houses", version="20000101T000000Z-00000")
    assert at.sidebar.selectbox(key="fx_version").value == "latest"
    assert [w.value for w in at.warning] == [
        "The link names version '20000101T000000Z-00000' of houses, which does not exist (it "
        "may have been deleted); showing the latest version."]
    at.run()  # told once: the picker has taken over
    assert not at.warning


def test_deep_link_to_unknown_alias_says_so(store):
    store.set_alias("houses", "production", store.versions("houses")[0].version)
    at = _frame(model="houses", alias="nosuch")
    assert at.sidebar.selectbox(key="fx_version").value == "latest"
    assert [w.value for w in at.warning] == [
        "houses has no alias 'nosuch' (its aliases: production); showing the latest version."]


def test_index_reads_follow_the_change_marker(store, house_bundle):
    at = _frame()
    assert at.sidebar.selectbox(key="fx_model").options == ["houses"]
    other = copy.deepcopy(house_bundle)
    other.meta.name = "houses-2"
    store.write(other)  # as another process would
    at.run()
    assert sorted(at.sidebar.selectbox(key="fx_model").options) == ["houses", "houses-2"]


def test_require_model_stops_with_advice(store):
    script = """
import streamlit as st
from core.workbench import ui
name, version = ui.require_model()
st.write(f"got {name}@{version}")
"""
    at = AppTest.from_string(script, default_timeout=60).run()
    assert "Choose a model in the sidebar" in at.info[0].value
    assert not at.markdown
    latest = store.versions("houses")[-1].version
    at = AppTest.from_string(script, default_timeout=60)
    at.query_params["model"] = "houses"
    at.run()
    assert at.markdown[0].value == f"got houses@{latest}"
