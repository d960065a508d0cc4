"""The card's parameters and lineage, evaluation results and Hugging Face fields, in HTML
and in the Quarto export, with hostile values shown as text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from monitor_helpers import write_log
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from core import bundle
from core.cards import analyses
from core.cards import card as cards
from core.cards import qmd as cardmd
from core.monitoring.actuals import save_actuals
from core.monitoring.evaluation import evaluate
from core.store.versionstore import VersionStore

EVIL_KEY = "<script>alert('k')</script>"
FORMULA = '=HYPERLINK("http://evil.example","x")'
HUGE = "A" * 100_000


def identity(x, **kwargs):  # a module-level function: the pipeline pickles by reference
    return x


def _text(html: str) -> str:
    class Text(HTMLParser):
        parts: list[str] = []

        def handle_data(self, data):
            self.parts.append(data)

    parser = Text()
    parser.parts = []
    parser.feed(html)
    return "".join(parser.parts)


@pytest.fixture(scope="module")
def board(tmp_path_factory, house_data):
    features = house_data.drop(columns="price").head(300)
    y = house_data["price"].head(300)
    store = VersionStore(str(tmp_path_factory.mktemp("card-analyses") / "board"))
    model = Pipeline([
        ("prep", ColumnTransformer([
            ("zip", OneHotEncoder(handle_unknown="ignore"), ["zipcode"]),
            ("num", FunctionTransformer(identity, kw_args={EVIL_KEY: FORMULA, "big": HUGE}),
             ["bedrooms", "sqft_living", "grade"]),
        ])),
        ("forest", RandomForestRegressor(n_estimators=100, max_depth=3, random_state=0,
                                         n_jobs=1)),
    ]).fit(features, y)
    b = bundle(model, features, name="house", metrics={"rmse": 41000.0},
               metrics_data="holdout <b>2026</b>", metrics_rows=400,
               training_data=features, training_code="git:<img src=x onerror=alert(1)>")
    store.write(b)
    ts = pd.Timestamp("2025-03-03", tz="UTC") + pd.to_timedelta(np.arange(60) * 600, unit="s")
    logged = write_log(store, b, features.head(60), ts, request_size=2)
    logged["price"] = y.loc[logged["source_row"]].to_numpy()
    save_actuals(store, "house", logged.iloc[::2], key_column="request_id",
                 actual_column="price", row_column="row")
    old = bundle(model, features, name="house")
    old.meta.lineage = None  # written before parameters were recorded
    old_version = store.write(old).version
    return store, b.version, old_version, logged


@pytest.fixture(scope="module")
def card(board):
    store, version, _, _ = board
    results = evaluate(store, "house", version, segment="zipcode")
    return cards.card_data(store, "house", version, evaluations=results, segment="zipcode",
                           endpoint="https://models.example.com/house")


def test_model_details_show_structure_lineage_and_parameters(card):
    html = cards.render_html(card)
    text = _text(html)
    assert ("Pipeline(ColumnTransformer(OneHotEncoder, FunctionTransformer) → "
            "RandomForestRegressor)") in text
    assert "forest__n_estimators" in text and re.search(r"forest__n_estimators\s*100", text)
    assert "prep/num" in text and "sklearn.preprocessing._function_transformer" in text
    assert "git:<img src=x onerror=alert(1)>" in text  # shown as text
    assert re.search(r"sha256 [0-9a-f]{64} \(300 rows, 6 columns\)", text)


def test_hostile_parameter_values_are_escaped(card):
    html = cards.render_html(card)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;k&#39;)&lt;/script&gt;" in html
    assert "<b>2026</b>" not in html and "holdout &lt;b&gt;2026&lt;/b&gt;" in html
    assert HUGE not in html  # a huge value is cut, with the marker
    assert "…[truncated]" in _text(html)
    # the formula is a cell of text inside the recorded JSON, never a live cell
    assert '"=HYPERLINK(\\"http://evil.example\\",\\"x\\")"' in _text(html)


def test_quantitative_analyses_use_evaluation_results(card, board):
    _, _, _, logged = board
    html = cards.render_html(card)
    section = _text(html.split('id="quantitative"')[1].split("<section")[0])
    assert "Distributions in the reference sample" not in section
    assert "holdout <b>2026</b> (400 rows)" in section  # the recorded metrics' data set
    assert f"({len(logged) // 2} rows of {len(logged)} predictions)" in section
    zips = logged.iloc[::2]["zipcode"].value_counts()
    top = zips.index[0]
    assert f"where zipcode = {top} ({zips.iloc[0]} rows)" in section
    assert "per value of zipcode" in section
    data = _text(html.split('id="data"')[1].split("<section")[0])
    assert "Distributions in training" in data  # the training sample's plots moved here


def test_old_version_says_not_recorded(board):
    store, _, old_version, _ = board
    text = _text(cards.render_html(cards.card_data(store, "house", old_version)))
    assert "Parameters not recorded" in text
    assert re.search(r"Training code\s*not recorded", text)


def test_get_started_calls_the_endpoint_with_the_example_row(card):
    calls = card.get_started
    assert "curl -X POST https://models.example.com/house/predict" in calls["curl"]
    assert '"zipcode": "' in calls["curl"] and '"bedrooms": ' in calls["curl"]
    assert calls["python"].startswith("import requests")
    assert "python -m core serve 'house@" in calls["serve"]
    compile(calls["python"], "example", "exec")  # valid Python


def test_get_started_quotes_hostile_names_for_the_shell_and_python(board):
    store, version, _, _ = board
    meta = store.meta("house", version)
    meta.prototype.columns[0].name = "it's \"x\"\n$(rm -rf ~)"
    calls = analyses.get_started(meta, "house@v")
    compile(calls["python"], "example", "exec")
    body = re.search(r"-d '(.*)'$", calls["curl"], re.S).group(1)
    assert "'" not in body.replace("'\\''", "")  # every quote closed and reopened


def test_hugging_face_fields_are_editable_sections(board):
    store, version, _, _ = board
    for key, text in (("license", "Apache-2.0"), ("citation", "@misc{house, title={<x>}}"),
                      ("contact", "data-team@example.com"), ("get_started", "Use a token.")):
        cards.save_section(store, "house", version, key, text, user="ana")
    card = cards.card_data(store, "house", version)
    html = cards.render_html(card)
    for title in ("How to get started", "Licence", "Citation", "Contact"):
        assert f">{title}</h2>" in html
    assert "Apache-2.0" in html and "data-team@example.com" in html
    assert "<x>" not in html
    qmd = cards.render_qmd(card)
    assert "## Licence\n\nApache-2.0" in qmd and "## Contact\n\ndata-team@example.com" in qmd


def test_qmd_text_carries_lineage_results_and_get_started(card):
    details = cardmd.automatic(card, "model_details")
    assert "**Parameters** (" in details and "forest\\_\\_n\\_estimators" in details
    assert "&lt;script" not in details and "<script" not in details.replace("\\<script", "")
    quantitative = cardmd.automatic(card, "quantitative")
    assert "| Source | On which data | Rows |" in quantitative
    assert "| holdout \\<b\\>2026\\<\\/b\\> \\(400 rows\\) | 400 | 41k |" in quantitative
    started = cardmd.automatic(card, "get_started")
    assert "```bash\ncurl -X POST https://models.example.com/house/predict" in started
    qmd = cards.render_qmd(card)
    assert "SEGMENT = 'zipcode'" in qmd
    assert "evaluation.evaluate(store, NAME, VERSION, segment=SEGMENT)" in qmd


def test_code_fence_outlasts_backticks_and_escapes_shortcodes():
    fenced = analyses.code_fence('echo "````" {{< include x >}}', "bash")
    assert fenced.startswith("`````bash\n") and fenced.endswith("\n`````")
    assert "{{{< include x >}}}" in fenced


def test_malformed_monitoring_results_are_skipped():
    found = analyses.from_monitoring([
        {"metrics": {"rmse": float("nan"), "mae": 2.0, "x": "y"}, "rows": -3,
         "segment": ["a"], "period": "nope"},
        "not a dict", {"no": "metrics"}, *([{"metrics": {"r2": 1}}] * 100)])
    assert found[0].metrics == {"mae": 2.0} and found[0].rows is None
    assert found[0].segment is None and found[0].period is None
    assert len(found) == analyses.MAX_EVALUATIONS - 2


def test_a_version_without_any_result_says_how_to_add_them(tmp_path, house_model, house_data):
    store = VersionStore(str(tmp_path / "board"))
    version = store.write(bundle(house_model, house_data.drop(columns="price"),
                                 name="bare")).version
    card = cards.card_data(store, "bare", version)
    assert card.evaluations == []
    html = cards.render_html(card)
    quantitative = _text(html.split('id="quantitative"')[1].split("<section")[0])
    assert "No evaluation results" in quantitative and "--metrics-data" in quantitative
    metrics = _text(html.split('id="metrics"')[1].split("<section")[0])
    assert "No evaluation results" not in metrics  # each note in its own section
    assert "No evaluation results" in cardmd.automatic(card, "quantitative")
