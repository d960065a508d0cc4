"""Tables, timeline and confirmation texts of the Models page, on a real store."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from core.model.bundle import bundle
from core.store.prune import prune_plan
from core.store.versionstore import VersionStore
from core.workbench import catalog


@pytest.fixture(scope="module")
def store(tmp_path_factory, house_model, house_data, churn_model, churn_data):
    store = VersionStore(str(tmp_path_factory.mktemp("catalog") / "store"))
    houses = bundle(house_model, house_data.drop(columns=["price"]), name="houses",
                    description="forest", metrics={"rmse": 41000.0}, tags=["demo"])
    for _ in range(3):
        store.write(copy.deepcopy(houses))
    store.write(bundle(churn_model, churn_data.drop(columns=["churned"]), name="churn"))
    first = store.versions("houses")[0].version
    store.set_alias("houses", "production", first)
    return store


def test_models_frame_and_filter(store):
    models = store.list_models()
    frame = catalog.models_frame(models)
    assert list(frame.columns) == catalog.MODEL_COLUMNS
    assert frame["name"].tolist() == ["churn", "houses"]  # newest update first
    houses = frame.set_index("name").loc["houses"]
    first = store.versions("houses")[0].version
    assert houses["versions"] == 3 and houses["aliases"] == f"production → {first}"
    assert catalog.models_frame(models, "PRODUCTION")["name"].tolist() == ["houses"]
    assert catalog.models_frame(models, "binary")["name"].tolist() == ["churn"]
    assert catalog.models_frame(models, "zzz").empty
    assert catalog.models_frame(models, "forest", also=["houses"])["name"].tolist() == ["houses"]


def test_versions_frame(store):
    frame = catalog.versions_frame(store.versions("houses"))
    ids = [v.version for v in store.versions("houses")]
    assert frame["version"].tolist() == ids[::-1]
    assert frame["metric: rmse"].tolist() == [41000.0] * 3
    assert frame.set_index("version").loc[ids[0], "aliases"] == "production"


def test_timeline_figure(store):
    versions = store.versions("houses")
    fig = catalog.timeline_figure(versions)
    (trace,) = fig.data
    # written seconds apart, yet each version has its own place, in order
    assert list(trace.x) == [0, 1, 2]
    assert [a.text for a in fig.layout.annotations] == ["production"]
    assert all(v.version in h for v, h in zip(versions, trace.hovertext, strict=True))
    assert " UTC" in trace.hovertext[0]
    empty = catalog.timeline_figure([])
    assert empty.layout.annotations[0].text == "No versions yet."


def _version(i: int, aliases: list[str]) -> SimpleNamespace:
    return SimpleNamespace(version=f"v{i}", created=datetime(2025, 3, 3, 12, 0, i, tzinfo=UTC),
                           aliases=aliases, user="ann", description="")


def test_timeline_labels_never_overlap():
    aliases = {3: ["production"], 4: ["staging"], 5: ["canary", "shadow"], 30: ["old"]}
    versions = [_version(i, aliases.get(i, [])) for i in range(40)]
    fig = catalog.timeline_figure(versions)
    notes = [(a.x, a.yshift, a.text) for a in fig.layout.annotations]
    assert [n[2] for n in notes] == ["production", "staging", "canary, shadow", "old"]
    per_char = 7 * len(versions) / 700  # the figure's own estimate of a label's width
    for i, (x1, y1, t1) in enumerate(notes):
        for x2, y2, t2 in notes[i + 1:]:
            apart = abs(x1 - x2) > (len(t1) + len(t2)) * per_char / 2
            assert apart or y1 != y2, (t1, t2)
    assert notes[-1][1] == notes[0][1]  # a label far away goes back to the first row


def test_prototype_and_environment_frames(store):
    meta = store.meta("houses", store.versions("houses")[-1].version)
    proto = catalog.prototype_frame(meta.prototype).set_index("column")
    assert proto.loc["zipcode", "kind"] == "category"
    assert proto.loc["zipcode", "values seen"].startswith("98001, 98004")
    assert " to " in proto.loc["sqft_living", "values seen"]
    env = catalog.environment_frame(meta.environment).set_index("name")["version"]
    assert env["python"] == meta.environment["python"] and "scikit-learn" in env


def test_alias_history_newest_first(store):
    ids = [v.version for v in store.versions("houses")]
    store.set_alias("houses", "staging", ids[1])
    store.set_alias("houses", "staging", ids[2])
    frame = catalog.alias_history_frame(store.alias_history("houses"))
    assert frame[["alias", "from", "to"]].values.tolist()[:2] == [
        ["staging", ids[1], ids[2]], ["staging", "", ids[1]]]


def test_delete_message(store):
    v = store.versions("houses")[0]
    text = catalog.delete_message(v)
    assert text.startswith(f"Delete houses@{v.version} (created ")
    assert "KB" in text and "alias(es) production, which will be removed too" in text


def test_prune_plan_matches_store_prune(tmp_path, house_model, house_data):
    store = VersionStore(str(tmp_path / "store"))
    b = bundle(house_model, None, name="h")
    for _ in range(5):
        store.write(copy.deepcopy(b))
    ids = [v.version for v in store.versions("h")]
    store.set_alias("h", "production", ids[1])
    plan = prune_plan(store.versions("h"), keep=2)
    assert [v.version for v in plan] == [ids[0], ids[2]]
    assert prune_plan(store.versions("h"), days=1) == []
    later = datetime.now(UTC) + timedelta(days=3)
    assert [v.version for v in prune_plan(store.versions("h"), days=1, now=later)] == [
        ids[0], ids[2], ids[3]]
    assert prune_plan(store.versions("h")) == []
    message = catalog.prune_message("h", plan)
    assert message.startswith("Delete 2 version(s) of h for good:") and ids[2] in message
    assert store.prune("h", keep=2) == [v.version for v in plan]
    assert catalog.prune_message("h", []) == (
        "Nothing to prune: every version of h is kept by these rules.")
