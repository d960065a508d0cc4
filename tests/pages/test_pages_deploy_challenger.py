"""Deploy page under AppTest: a real endpoint started with a shadow challenger, shown with
its counts, changed to a canary, refused a challenger it may not load, and stopped."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from challenger_helpers import Sleepy
from streamlit.testing.v1 import AppTest

from core.deploy import endpoints as deploy
from core.model.bundle import bundle
from core.serving.netcheck import free_port
from core.store.versionstore import VersionStore

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "deploy.py")
pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_model, house_data, churn_model, churn_data) -> VersionStore:
    store = VersionStore(tmp_path_factory.mktemp("pages-deploy-ch") / "board")
    x = house_data.drop(columns="price")
    info = store.write(bundle(house_model, x, name="house"))
    store.set_alias("house", "production", info.version)
    store.write(bundle(house_model, x, name="house"))
    store.write(bundle(churn_model, churn_data.drop(columns="churned"), name="churn"))
    sleepy = bundle(Sleepy(list(x.columns), 0.0), x, name="sleepy")
    store.write(sleepy)
    return store


@pytest.fixture
def env(board, monkeypatch):
    monkeypatch.setenv("FIXATIVE_STORE", str(board.url))
    monkeypatch.delenv("FIXATIVE_PASSWORD", raising=False)
    yield board
    for status in deploy.list_endpoints(board, probe=False):
        deploy.stop_endpoint(board, status.endpoint, grace=5)


def page(model: str = "house", version: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.query_params["model"] = model
    if version:
        at.query_params["version"] = version
    at.run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def metadata(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metadata", timeout=10) as r:
        return json.loads(r.read())


def test_the_candidates_take_the_same_inputs(env):
    v1, v2 = (v.version for v in env.versions("house"))
    at = page(version=v1)
    ref = at.selectbox(key="deploy_ch_start_ref")
    assert ref.options == [f"version {v2}", f"sleepy, version {env.resolve('sleepy')[1]}"]
    assert at.selectbox(key="deploy_ch_start_mode").value == "none"
    # a model no other version fits says what to do
    at = page(model="churn")
    assert at.selectbox(key="deploy_ch_start_ref").options == []
    assert any("No other version takes the inputs of churn@" in t for t in texts(at.caption))
    at.selectbox(key="deploy_ch_start_mode").set_value("shadow")
    at.button(key="FormSubmitter:deploy_start_form-Start endpoint").click().run()
    assert not at.exception
    assert any("There is no version to run as a challenger" in t for t in texts(at.error))
    assert deploy.list_endpoints(env, probe=False) == []


def test_start_see_change_and_stop_a_challenger(env):
    v1, v2 = (v.version for v in env.versions("house"))
    at = page(version=v1)
    port = free_port()
    at.number_input(key="deploy_port").set_value(port)
    at.selectbox(key="deploy_ch_start_mode").set_value("shadow")
    at.selectbox(key="deploy_ch_start_ref").set_value(f"house@{v2}")
    at.button(key="FormSubmitter:deploy_start_form-Start endpoint").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    [status] = deploy.list_endpoints(env)
    ep = status.endpoint
    assert metadata(port)["challenger"]["version"] == v2
    captions = texts(at.caption)
    assert any(t.startswith(f"Challenger: house@{v2} in shadow") and "0 scored" in t
               and "0 dropped" in t for t in captions), captions
    assert any("Monitor page's Challenger tab" in t for t in captions)
    [table] = [d.value for d in at.dataframe if "url" in d.value.columns]
    assert table.iloc[0]["challenger"] == f"shadow house@{v2}"

    # a challenger the endpoint may not load is refused; the endpoint runs on untouched
    at.selectbox(key=f"deploy_ch_{ep.id}_ref").set_value(f"sleepy@{env.resolve('sleepy')[1]}")
    at.button(key=f"FormSubmitter:deploy_ch_form_{ep.id}-Restart with this challenger"
              ).click().run()
    assert not at.exception, at.exception
    assert any("outside the safety allowlist" in t for t in texts(at.error)), texts(at.error)
    assert any("start the endpoint on the command line with --trust" in t
               for t in texts(at.caption))
    [same] = deploy.list_endpoints(env)
    assert same.endpoint.pid == ep.pid and same.endpoint.challenger == ep.challenger

    at.selectbox(key=f"deploy_ch_{ep.id}_mode").set_value("canary")
    at.selectbox(key=f"deploy_ch_{ep.id}_ref").set_value(f"house@{v2}")
    at.number_input(key=f"deploy_ch_{ep.id}_share").set_value(20.0)
    at.button(key=f"FormSubmitter:deploy_ch_form_{ep.id}-Restart with this challenger"
              ).click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert texts(at.success) == [f"{ep.label} runs with house@{v2} as a canary (answers 20% "
                                 "of requests)."]
    meta = metadata(port)["challenger"]
    assert (meta["mode"], meta["share"]) == ("canary", pytest.approx(0.2))
    assert any(t == f"Challenger: house@{v2} as a canary (answers 20% of requests)."
               for t in texts(at.caption))

    at.button(key=f"deploy_ch_stop_{ep.id}").click().run()
    assert not at.exception, at.exception
    assert texts(at.success) == [f"{ep.label} runs with no challenger."]
    assert "challenger" not in metadata(port)
    assert any(t == "No challenger runs next to this version." for t in texts(at.caption))
    assert not [b for b in at.button if b.key == f"deploy_ch_stop_{ep.id}"]
    [after] = deploy.list_endpoints(env)
    assert after.endpoint.id == ep.id and after.endpoint.port == port
