"""Changing the challenger of a running endpoint (``set_challenger``): a real server is
restarted with the same options and the new challenger; whatever is refused leaves it
running untouched, and a restart that fails brings it back as it was."""

from __future__ import annotations

import json
import urllib.request

import pytest
from challenger_helpers import write_challengers
from deploy_helpers import deploy_store
from sklearn.linear_model import LinearRegression

from core.deploy import endpoints as deploy
from core.errors import Conflict, FixativeError, InvalidArgument, InvalidName, NotFound, UnsafeModel
from core.model.bundle import bundle
from core.serving.netcheck import free_port

pytestmark = pytest.mark.process
TRUSTED = ["challenger_helpers.Faulty"]


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data, churn_model, churn_data):
    s = deploy_store(tmp_path_factory.mktemp("deploy-change"), house_model, house_data)
    x = house_data.drop(columns="price")
    write_challengers(s, house_model, x, 0.0)
    s.write(bundle(churn_model, churn_data.drop(columns="churned"), name="churn"))
    small = x[list(x.columns[:3])]  # the same task, fewer inputs
    s.write(bundle(LinearRegression().fit(small, house_data["price"]), small, name="small"))
    return s


@pytest.fixture(scope="module")
def endpoint(store):
    ep = deploy.start_endpoint(store, "house:production", port=free_port(), workers=1,
                               batching=False, max_body_mb=3, trusted=TRUSTED)
    yield ep
    for status in deploy.list_endpoints(store, probe=False):
        deploy.stop_endpoint(store, status.endpoint, grace=5)


def metadata(ep) -> dict:
    with urllib.request.urlopen(f"{ep.url}/metadata", timeout=10) as r:
        return json.loads(r.read())


def current(store) -> deploy.Endpoint:
    [status] = deploy.list_endpoints(store)
    assert status.status == "running", status.detail
    return status.endpoint


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"shadow": "churn"}, InvalidArgument, "a challenger must do the same task"),
    ({"shadow": "small"}, InvalidArgument, "does not take the champion's inputs"),
    ({"canary": "small:10%"}, InvalidArgument, "does not take the champion's inputs"),
    ({"shadow": "sleepy"}, UnsafeModel, "outside the safety allowlist"),
    ({"shadow": "handmade"}, UnsafeModel, "outside the safety allowlist"),
    ({"shadow": "house@20200101T000000Z-00000"}, NotFound, "No version"),
    ({"shadow": "nope"}, NotFound, "nope"),
    ({"shadow": "../x"}, InvalidName, "not allowed"),
    ({"shadow": "house/../../etc"}, InvalidName, "not allowed"),
    ({"canary": "a@b:200%"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": "a@b:-1%"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": "a@b:nan%"}, InvalidArgument, "is not a number"),
    ({"canary": "a@b:ten%"}, InvalidArgument, "not a number"),
    ({"canary": "house"}, InvalidArgument, "REF:SHARE"),
    ({"canary": "x" * 100_000 + ":10%"}, InvalidArgument, "characters long"),
    ({"shadow": "x" * 100_000}, InvalidArgument, "characters long"),
    ({"shadow": ""}, InvalidArgument, "is empty"),
    ({"shadow": "twin", "canary": "twin:5%"}, InvalidArgument, "not both"),
    ({"shadow": "twin", "stop": True}, InvalidArgument, "not both"),
    ({}, InvalidArgument, "Say what to run"),
    ({"shadow": "twin", "timeout": float("nan")}, InvalidArgument, "timeout"),
])
def test_a_refused_change_leaves_the_endpoint_untouched(store, endpoint, kwargs, error,
                                                        message):
    before = current(store)
    with pytest.raises(error, match=message):
        deploy.set_challenger(store, before.port, **kwargs)
    after = current(store)
    assert after.to_dict() == before.to_dict()
    assert deploy.process_state(before.pid, before.proc_start) == "alive"
    assert "challenger" not in metadata(after)


@pytest.mark.parametrize("key", ["nothere", "q1", "../../etc/passwd", "x" * 10_000])
def test_an_unknown_endpoint_is_refused(store, endpoint, key):
    with pytest.raises(NotFound, match="No endpoint"):
        deploy.set_challenger(store, key, shadow="twin")


def test_shadow_then_canary_then_none(store, endpoint):
    versions = [v.version for v in store.versions("house")]
    champion = store.aliases("house")["production"]
    before = current(store)

    ep = deploy.set_challenger(store, before.id, shadow=f"house@{versions[-1]}")
    assert (ep.id, ep.port, ep.alias, ep.version) == (before.id, before.port, "production",
                                                      champion)
    assert ep.pid != before.pid
    assert deploy.process_state(before.pid, before.proc_start) == "gone"
    assert {k: v for k, v in ep.options.items() if k != "challenger"} == \
        {k: v for k, v in before.options.items()}
    meta = metadata(ep)
    assert meta["version"] == champion
    assert (meta["challenger"]["mode"], meta["challenger"]["version"]) == ("shadow",
                                                                           versions[-1])
    assert {"scored", "failed", "dropped"} <= set(meta["challenger"])
    assert current(store).challenger == ep.challenger
    assert ep.challenger.text.startswith(f"house@{versions[-1]} in shadow")

    ep2 = deploy.set_challenger(store, ep.port, canary="twin:25%")
    meta = metadata(ep2)
    twin = store.resolve("twin")[1]
    assert meta["challenger"]["mode"] == "canary"
    assert (meta["challenger"]["name"], meta["challenger"]["version"]) == ("twin", twin)
    assert meta["challenger"]["share"] == pytest.approx(0.25)
    assert ep2.options["challenger"] == ["canary", f"twin@{twin}:25%"]
    assert ep2.options["batching"] is False and ep2.options["max_body_mb"] == 3
    assert ep2.options["trusted"] == TRUSTED

    # the same challenger again: nothing restarts
    assert deploy.set_challenger(store, ep2.port, canary=f"twin@{twin}:25%").pid == ep2.pid
    assert current(store).pid == ep2.pid

    ep3 = deploy.set_challenger(store, ep2.id, stop=True)
    assert "challenger" not in metadata(ep3)
    assert ep3.challenger is None and "challenger" not in ep3.options
    # no challenger to stop: nothing restarts
    assert deploy.set_challenger(store, ep3.id, stop=True).pid == ep3.pid
    events = [(r.payload["event"], (r.payload.get("challenger") or {}).get("mode"))
              for r in deploy.endpoint_history(store, "house")]
    assert events[-6:] == [("stopped", None), ("started", "shadow"), ("stopped", None),
                           ("started", "canary"), ("stopped", None), ("started", None)]


def test_a_restart_that_fails_brings_the_endpoint_back_as_it_was(store, endpoint,
                                                                 monkeypatch):
    # the server cannot import the tests' class: the challenger passes every check (it is
    # trusted) and fails to load in the new process
    monkeypatch.delenv("PYTHONPATH", raising=False)
    before = deploy.set_challenger(store, endpoint.port, shadow="twin")
    with pytest.raises(FixativeError, match="did not start with faulty@.* so it runs again "
                                            "as it was"):
        deploy.set_challenger(store, before.port, shadow="faulty")
    after = current(store)
    assert after.pid != before.pid and after.id == before.id
    assert after.challenger == before.challenger
    assert metadata(after)["challenger"]["name"] == "twin"


def test_a_crashed_endpoint_is_not_restarted(store, endpoint):
    ep = current(store)
    deploy._terminate(ep.pid, ep.proc_start, grace=5)
    with pytest.raises(Conflict, match="is not running"):
        deploy.set_challenger(store, ep.id, shadow="twin")
    [status] = deploy.list_endpoints(store, probe=False)
    assert status.status == "crashed" and status.endpoint.id == ep.id


def test_a_restart_that_fails_twice_leaves_the_endpoint_stopped_and_says_so(store,
                                                                            monkeypatch):
    for status in deploy.list_endpoints(store, probe=False):
        deploy.stop_endpoint(store, status.endpoint, grace=5)
    ep = deploy.start_endpoint(store, "house:production", port=free_port())
    # every server started from now on refuses its (empty) token list at start-up
    monkeypatch.setenv("FIXATIVE_API_TOKENS", " , ")
    with pytest.raises(FixativeError, match=r"could not be started again as it was, so it "
                                            r"is stopped\. Start it with `python -m core "
                                            rf"endpoints start house@{ep.version} --port "
                                            rf"{ep.port}`"):
        deploy.set_challenger(store, ep.id, shadow="twin")
    assert deploy.list_endpoints(store) == []
    assert deploy.process_state(ep.pid, ep.proc_start) == "gone"
    events = [r.payload["event"] for r in deploy.endpoint_history(store, "house")]
    assert events[-1] == "stopped"
