"""The Deploy page's Docker bundle with a challenger: chosen among the model's other
versions, checked before the download is offered."""

from __future__ import annotations

from pathlib import Path

import pytest
from challenger_helpers import Faulty
from streamlit.testing.v1 import AppTest

from core.model import examples
from core.model.bundle import bundle
from core.store.versionstore import VersionStore

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "deploy.py")


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data):
    store = VersionStore(tmp_path_factory.mktemp("pages-pair") / "board")
    x = house_data.drop(columns="price")
    v1 = store.write(bundle(house_model, x, name="house")).version
    v2 = store.write(bundle(examples.house_model(house_data, n_estimators=4), x,
                            name="house")).version
    v3 = store.write(bundle(Faulty(list(x.columns)), x, name="house")).version
    return store, v1, v2, v3


def _page(board, monkeypatch, version: str) -> AppTest:
    monkeypatch.setenv("FIXATIVE_STORE", str(board[0].url))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["model"] = "house"
    at.query_params["version"] = version
    at.run()
    assert not at.exception, at.exception
    at.checkbox(key="deploy_docker_lock").uncheck().run()
    return at


def test_a_canary_challenger_goes_into_the_bundle(board, monkeypatch):
    store, v1, v2, _ = board
    at = _page(board, monkeypatch, v1)
    at.selectbox(key="deploy_docker_challenger").select(v2).run()
    at.selectbox(key="deploy_docker_mode").select("canary").run()
    at.number_input(key="deploy_docker_share").set_value(25).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(f"--no-lock --canary house@{v2}:25%" in c.value for c in at.caption)
    [download] = at.get("download_button")
    assert download.label == "Download the Docker bundle (.zip)"
    # back to no challenger: the plain bundle and command again
    at.selectbox(key="deploy_docker_challenger").select("none").run()
    assert not any("--canary" in c.value for c in at.caption)
    assert not at.get("selectbox") or "deploy_docker_mode" not in [
        getattr(b, "key", None) for b in at.selectbox]


def test_an_untrusted_challenger_is_refused_with_the_reason(board, monkeypatch):
    _, v1, _, v3 = board
    at = _page(board, monkeypatch, v1)
    at.selectbox(key="deploy_docker_challenger").select(v3).run()
    [error] = [e.value for e in at.error if e.value.startswith("No Docker bundle with this")]
    assert "challenger_helpers.Faulty" in error
    assert not at.get("download_button")
