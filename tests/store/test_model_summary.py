"""The readable class ("Pipeline(StandardScaler → Ridge)") is kept by the index and the
kept listing, and shown by `list`, the Models table and the versions table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.cli.main import main as cli
from core.cli.output import _cut
from core.model.bundle import bundle
from core.store.versionstore import VersionStore
from core.workbench.catalog import models_frame, versions_frame

WHOLE = "Pipeline(ColumnTransformer(OneHotEncoder, passthrough) → RandomForestRegressor)"


@pytest.fixture()
def board(tmp_path, house_model, house_data):
    store = VersionStore(str(tmp_path / "board"))
    store.write(bundle(house_model, house_data.drop(columns=["price"]), name="houses"))
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    ridge = make_pipeline(StandardScaler(), Ridge()).fit(frame, [0.0, 1.0, 2.0, 3.0])
    store.write(bundle(ridge, frame, name="small"))
    return store


def test_the_index_keeps_the_class_with_its_parts(board):
    by_name = {m.name: m for m in board.list_models()}
    assert by_name["houses"].model_summary == WHOLE
    assert by_name["small"].model_summary == "Pipeline(StandardScaler → Ridge)"
    assert by_name["small"].model_class == "Pipeline"  # the kind check still sees the class
    (version,) = board.versions("small")
    assert version.model_summary == "Pipeline(StandardScaler → Ridge)"
    # rebuilt from the board alone, the same
    board.reindex()
    again = VersionStore(str(board.url))
    assert {m.name: m.model_summary for m in again.list_models()} == {
        "houses": WHOLE, "small": "Pipeline(StandardScaler → Ridge)"}


def test_list_shows_it_and_keeps_the_final_estimator_in_view(board, capsys):
    assert cli(["list", "--store", str(board.url)]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert "MODEL" in header.split() and "MODEL_CLASS" not in header
    assert any("Pipeline(StandardScaler → Ridge)" in r for r in rows)
    houses = next(r for r in rows if r.startswith("houses"))
    assert _cut(WHOLE) in houses and _cut(WHOLE).endswith("RandomForestRegressor)")
    assert cli(["list", "--store", str(board.url), "--json"]) == 0
    doc = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert doc["houses"]["model_summary"] == WHOLE
    assert doc["houses"]["model_class"] == "Pipeline"


@pytest.mark.parametrize("width", [5, 20, 64])
def test_a_long_class_is_cut_in_the_middle_to_the_width(width):
    cut = _cut(WHOLE, width)
    assert len(cut) == width and "…" in cut
    assert WHOLE.startswith(cut.split("…")[0]) and WHOLE.endswith(cut.split("…")[1])
    assert _cut("Ridge", width) == "Ridge"


def test_the_kept_listing_carries_it_and_an_older_listing_is_not_used(board, capsys):
    url = str(board.url)
    assert cli(["list", "--store", url, "--json"]) == 0  # keeps the listing
    capsys.readouterr()
    kept = sorted(Path(url).rglob("models.json"))
    assert kept, "list keeps its answer beside the index"
    doc = json.loads(kept[0].read_text())
    assert {i["name"]: i["model_summary"] for i in doc["items"]}["houses"] == WHOLE
    # a listing from before the field existed (same marker) is refused, not half-read
    for item in doc["items"]:
        del item["model_summary"]
        item["model_class"] = "Forged"
    doc["format"] -= 1
    kept[0].write_text(json.dumps(doc))
    assert cli(["list", "--store", url, "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["houses"]["model_summary"] == WHOLE
    assert listed["houses"]["model_class"] == "Pipeline"


@pytest.mark.parametrize("structure", [["not", "text"], {"a": 1}, 42, "", None])
def test_a_recorded_structure_that_is_not_text_falls_back_to_the_class(board, structure):
    """A hand-edited metadata file: the listing never breaks, it shows the class."""
    from core.store.layout import summary_of

    assert summary_of({"model_class": "Ridge", "lineage": {"structure": structure}}) == "Ridge"
    assert summary_of({"model_class": "Ridge", "lineage": "junk"}) == "Ridge"
    assert summary_of({}) == ""


def test_the_models_and_versions_tables_show_it(board):
    frame = models_frame(board.list_models())
    assert dict(zip(frame["name"], frame["model"], strict=True)) == {
        "houses": WHOLE, "small": "Pipeline(StandardScaler → Ridge)"}
    # searching the table by a part of the model finds it
    found = models_frame(board.list_models(), text="randomforest")
    assert list(found["name"]) == ["houses"]
    assert list(versions_frame(board.versions("small"))["model"]) == [
        "Pipeline(StandardScaler → Ridge)"]
