"""A local endpoint's challenger without a server: checked against the champion, read
back from a record (forged ones too), offered as candidates, and shown."""

from __future__ import annotations

import pytest
from deploy_helpers import deploy_store
from sklearn.linear_model import LinearRegression

from core.deploy import views
from core.deploy.challenger import (
    ChallengerOption,
    challenger_candidates,
    challenger_option,
    recorded_challenger,
)
from core.deploy.endpoints import Endpoint, EndpointStatus
from core.errors import InvalidArgument, InvalidName, NotFound, UnsafeModel
from core.model.bundle import bundle


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data, churn_model, churn_data):
    s = deploy_store(tmp_path_factory.mktemp("deploy-ch-options"), house_model, house_data)
    x = house_data.drop(columns="price")
    s.write(bundle(house_model, x, name="house"))
    s.write(bundle(house_model, x, name="twin"))
    s.write(bundle(churn_model, churn_data.drop(columns="churned"), name="churn"))
    small = x[list(x.columns[:3])]
    s.write(bundle(LinearRegression().fit(small, house_data["price"]), small, name="small"))
    return s


def champion(store) -> tuple[str, str]:
    return store.resolve("house:production")


def test_a_challenger_is_pinned_and_checked(store):
    v2 = store.resolve("house")[1]
    option = challenger_option(store, champion(store), canary="house:12.5%")
    assert option == ChallengerOption("canary", "house", v2, 0.125)
    assert option.flag == ("canary", f"house@{v2}:12.5%")
    assert challenger_option(store, champion(store), canary="twin", share="10%").share == 0.1
    assert challenger_option(store, champion(store)) is None
    assert challenger_option(store, champion(store), shadow="twin").flag[0] == "shadow"


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"shadow": "house:production"}, InvalidArgument, "is the champion itself"),
    ({"shadow": "churn"}, InvalidArgument, "must do the same task"),
    ({"shadow": "small"}, InvalidArgument, "columns only in one"),
    ({"shadow": "handmade"}, UnsafeModel, "outside the safety allowlist"),
    ({"shadow": "nope"}, NotFound, "nope"),
    ({"shadow": "../../etc/passwd"}, InvalidName, "not allowed"),
    ({"shadow": "house@'; DROP TABLE versions; --"}, InvalidName, "not allowed"),
    ({"shadow": " "}, InvalidArgument, "is empty"),
    ({"canary": "twin:0%"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": "twin:100%"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": "twin:inf%"}, InvalidArgument, "is not a number"),
    ({"canary": "twin", "share": "-5"}, InvalidArgument, "outside 0%-100%"),
    ({"canary": ":10%"}, InvalidArgument, "REF:SHARE"),
    ({"canary": "t" * 401}, InvalidArgument, "401 characters long"),
])
def test_a_wrong_challenger_is_refused(store, kwargs, error, message):
    with pytest.raises(error, match=message):
        challenger_option(store, champion(store), **kwargs)


@pytest.mark.parametrize("flag", [
    None, "shadow house@v1", ["shadow"], ["exec", "house@v1"], ["shadow", 3],
    ["shadow", "house"], ["shadow", "--evil@v1"], ["shadow", "../x@v1"],
    ["canary", "house@v1:500%"], ["canary", "house@v1"], ["shadow", "house@v1", "x"],
])
def test_a_forged_record_has_no_challenger(flag):
    assert recorded_challenger({"challenger": flag}) is None


def test_a_recorded_challenger_reads_back():
    option = ChallengerOption("canary", "house", "v2", 0.1)
    assert recorded_challenger({"challenger": list(option.flag)}) == option
    assert option.text == "house@v2 as a canary (answers 10% of requests)"


def test_candidates_take_the_same_inputs(store):
    name, version = champion(store)
    v2 = store.resolve("house")[1]
    assert challenger_candidates(store, name, version) == [
        f"house@{v2}", f"twin@{store.resolve('twin')[1]}"]
    assert challenger_candidates(store, name, version, limit=1) == [f"house@{v2}"]
    assert challenger_candidates(store, "churn", store.resolve("churn")[1]) == []


def _endpoint(challenger: list[str] | None = None) -> Endpoint:
    return Endpoint(id="e1", name="house", version="v1", host="127.0.0.1", port=8080, pid=1,
                    started="2026-01-01T00:00:00Z", log_file="", store="",
                    options={"challenger": challenger} if challenger else {})


def test_what_the_page_says_about_a_challenger():
    assert views.challenger_text(_endpoint(), None) == \
        "No challenger runs next to this version."
    shadow = _endpoint(["shadow", "house@v2"])
    live = {"challenger": {"scored": 1200, "failed": 3, "dropped": 0, "queued": 1}}
    assert views.challenger_text(shadow, live) == (
        "Challenger: house@v2 in shadow (scores every request in the background). Requests "
        "since it started: 1,200 scored, 3 failed, 0 dropped, 1 waiting.")
    assert views.challenger_text(shadow, None, "the server asks for a token").endswith(
        "Counts not shown: the server asks for a token.")
    # a forged answer shows no counts, never its text
    forged = {"challenger": {"scored": "<script>", "failed": True, "dropped": [1]}}
    assert views.challenger_text(shadow, forged).endswith("in the background).")
    assert views.challenger_text(shadow, {"challenger": "x"}).endswith(
        "the server does not report a challenger.")
    canary = _endpoint(["canary", "house@v2:5%"])
    assert views.challenger_text(canary, live) == \
        "Challenger: house@v2 as a canary (answers 5% of requests)."
    frame = views.endpoints_frame([EndpointStatus(canary, "running"),
                                   EndpointStatus(_endpoint(), "running")])
    assert frame["challenger"].tolist() == ["canary house@v2 (5%)", ""]
